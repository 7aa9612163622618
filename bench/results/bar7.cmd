build/shmq-bench recover --store-bytes 4G --queues 1000 --size 1024 --restarts 5
