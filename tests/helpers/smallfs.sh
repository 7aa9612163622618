# A small filesystem for the cleaner's TAP tests (tests/integration/cleaner.t,
# tests/crash/full_disk.t): a size-limited tmpfs mounted at $T/fs, or, where
# tmpfs cannot be mounted, a loop-mounted ext4 image; the store goes on it,
# and the cleanup trap unmounts it.  fill_to sets the filesystem's usage
# (RocketMQ's formula) with a filler file, so the disk watermarks are
# crossed exactly when the test says.
#
# Usage, after broker_init:  . "$SRC/tests/helpers/smallfs.sh"; smallfs_init 64
# Needs root (mount); without it the test prints a TAP skip plan and exits 0.

FS=""
FS_KIND=""

smallfs_cleanup() {
    local t=$T
    T="" # broker_cleanup stops every process; the directory goes after the unmount
    broker_cleanup
    T=$t
    if [ -n "$FS" ]; then
        umount "$FS" 2>/dev/null || umount -l "$FS" 2>/dev/null
    fi
    [ -n "$T" ] && rm -rf "$T"
}

# smallfs_init MB: mount the filesystem, set FS and STORE ($FS/store).
smallfs_init() {
    local why
    FS="$T/fs"
    mkdir -p "$FS"
    trap smallfs_cleanup EXIT
    if mount -t tmpfs -o "size=${1}m" tmpfs "$FS" 2>"$T/mount.err"; then
        FS_KIND=tmpfs
    elif truncate -s "${1}M" "$T/fs.img" 2>>"$T/mount.err" &&
        mkfs.ext4 -q -F -m 0 "$T/fs.img" >>"$T/mount.err" 2>&1 &&
        mount -o loop "$T/fs.img" "$FS" 2>>"$T/mount.err"; then
        FS_KIND=loop
    else
        why=$(tr '\n' ' ' <"$T/mount.err" | cut -c1-200)
        FS=""
        echo "1..0 # SKIP cannot mount a small filesystem (tmpfs or loop image): $why"
        exit 0
    fi
    STORE="$FS/store"
    mkdir -p "$STORE"
}

# used_pct: the filesystem's usage, RocketMQ's formula (ceil(used*100/(used+avail))).
used_pct() {
    stat -f -c '%S %b %f %a' "$FS" | perl -ane '
        my ($bs, $total, $free, $avail) = @F; my $used = $total - $free;
        my $e = $used + $avail; print $e ? int(($used * 100 + $e - 1) / $e) : -1, "\n"'
}

# place_filler SIZE_FN ARG: replace $FS/filler with one of the bytes `SIZE_FN ARG` prints
# (figured from the filesystem without the filler; 0: no filler).  Producers may be
# writing meanwhile: when the space shrank between the look and the fallocate, look again
# (bounded); non-zero if the filler could not be placed.
place_filler() {
    local bytes i=0
    while [ $i -lt 20 ]; do
        bytes=$("$1" "$2")
        rm -f "$FS/filler"
        [ "$bytes" -gt 0 ] || return 0
        fallocate -l "$bytes" "$FS/filler" 2>"$T/fill.err" && return 0
        i=$((i + 1))
    done
    cat "$T/fill.err" >&2
    return 1
}

# filler_size_pct PCT: the filler's bytes for a filesystem PCT % used (fill_to).
filler_size_pct() {
    stat -f -c '%S %b %f %a' "$FS" | perl -e '
        my ($pct, $filler) = @ARGV;
        my ($bs, $total, $free, $avail) = split " ", scalar <STDIN>;
        my $used = ($total - $free) * $bs - ($filler || 0); # without the filler
        my $entire = ($total - $free + $avail) * $bs;
        my $want = int($entire * $pct / 100) + 2 * $bs - $used;
        $want = 0 if $pct <= 0 || $want < 0;
        print int(($want + 4095) / 4096) * 4096, "\n";
    ' "$1" "$(du -B1 "$FS/filler" 2>/dev/null | cut -f1)"
}

# fill_to PCT: replace $FS/filler so that the filesystem is PCT % used (0: remove it);
# non-zero if the filler could not be placed (place_filler).
fill_to() {
    place_filler filler_size_pct "$1"
}

# held_deleted: how many mappings of deleted files under $FS the processes have.
held_deleted() {
    cat /proc/[0-9]*/maps 2>/dev/null | grep -F "$FS/" | grep -c ' (deleted)$'
}

# wait_released [TENTHS]: until no process maps a deleted file of $FS (its space is back).
wait_released() {
    local lim=${1:-50} i=0
    while [ "$(held_deleted)" -gt 0 ] && [ $i -lt "$lim" ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ "$(held_deleted)" -eq 0 ]
}
