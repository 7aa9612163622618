build/shmq-bench writer-kill --kills 20 --size 128 --plot docs/img/bar8-writer-kill.png
