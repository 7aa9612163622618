build/shmq-bench consume --store DIR --passes 5 --json --no-check-crcs   # DIR: a running broker holding 5,000,000 messages of 128 B in BenchTopic; runs alternated on/off
