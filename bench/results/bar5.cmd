build/shmq-bench e2e --rate 100000 --size 128 --seconds 5 --inflight 64 --plot docs/img/bar5-e2e-100k.png
