build/shmq-bench produce --flush sync --producers 4 --inflight 64 --size 1024 --seconds 5 --plot docs/img/bar3-sync-4x64.png
