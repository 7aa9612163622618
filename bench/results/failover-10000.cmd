bench/failover --runs 5 --broker-timeout 10000 --json
