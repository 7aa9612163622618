build/shmq-bench group --members 4 --count 5000000 --json
