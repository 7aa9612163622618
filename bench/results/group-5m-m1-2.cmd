build/shmq-bench group --members 1 --count 5000000 --json
