build/shmq-bench group --members 4 --count 1000000 --json
