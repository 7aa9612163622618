build/shmq-bench idle --seconds 10
