build/shmq-bench group --members 1 --count 1000000 --json
