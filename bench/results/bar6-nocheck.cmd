build/shmq-bench consume --count 5000000 --size 128 --no-check-crcs
