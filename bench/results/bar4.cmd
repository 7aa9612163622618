build/shmq-bench produce --flush sync --producers 8 --size 128 --seconds 5 --plot docs/img/bar4-sync-8x1.png
