build/shmq-bench produce --size 128 --seconds 5 --batch 256
