bench/failover --runs 9 --json
