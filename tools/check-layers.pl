#!/usr/bin/perl
# check-layers.pl [SRC]: libshm's layering rules, as each folder's README
# states them, hold for every #include.
#
# Each libshm/<layer>/README.md has a line
#     May include: <layer> <layer> ...
# naming the other layers whose headers files in <layer> may include (its
# own and include/shmq/ always may).  A file's quoted include "<dir>/x.h"
# with <dir> a libshm layer not on that line is an upward (or sideways)
# include: reported with file and line.  Source files directly in libshm/,
# a layer without a README or without the line, and an include of a layer
# that does not exist are reported too.  Exit 0 when clean, 1 otherwise.
use strict;
use warnings;

my $src = shift // '.';
my $lib = "$src/libshm";
opendir(my $dh, $lib) or die "check-layers: $lib: $!\n";
my @entries = sort grep { !/^\./ } readdir($dh);
closedir($dh);
my @layers = grep { -d "$lib/$_" } @entries;
my %is_layer = map { $_ => 1 } @layers;
my $bad = 0;

sub report { print "@_\n"; $bad++; }

for my $e (@entries) {
    report("libshm/$e: a source file outside every layer folder") if $e =~ /\.[ch]$/;
}
my %allowed;
for my $l (@layers) {
    my $readme = "$lib/$l/README.md";
    open(my $fh, '<', $readme) or do { report("libshm/$l: no README.md stating its rules"); next };
    while (<$fh>) {
        if (/^May include:\s*(.*?)\s*$/) {
            my @may = split /[\s,]+/, $1;
            @may = () if "@may" eq 'nothing';
            for my $m (@may) {
                report("libshm/$l/README.md: \"$m\" is not a layer") unless $is_layer{$m};
            }
            $allowed{$l} = { map { $_ => 1 } @may, $l };
        }
    }
    close($fh);
    report("libshm/$l/README.md: no \"May include:\" line") unless $allowed{$l};
}
for my $l (@layers) {
    next unless $allowed{$l};
    opendir(my $d, "$lib/$l") or next;
    for my $f (sort grep { /\.[ch]$/ } readdir($d)) {
        open(my $fh, '<', "$lib/$l/$f") or next;
        while (my $line = <$fh>) {
            next unless $line =~ /^\s*#\s*include\s+"([^"]+)"/;
            my $inc = $1;
            next unless $inc =~ m{^([^/]+)/};
            my $dir = $1;
            next if $dir eq 'shmq'; # include/shmq: the public API
            if (!$is_layer{$dir}) {
                report("libshm/$l/$f:$.: includes \"$inc\": no layer $dir");
            } elsif (!$allowed{$l}{$dir}) {
                report("libshm/$l/$f:$.: includes \"$inc\": layer $l may not include $dir");
            }
        }
        close($fh);
    }
    closedir($d);
}
exit($bad ? 1 : 0);
