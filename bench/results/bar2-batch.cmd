build/shmq-bench produce --size 1024 --seconds 5 --batch 64
