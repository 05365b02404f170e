#!/usr/bin/env perl
# Real Perl clients against a running server, unmodified:
# Cache::Memcached and Cache::Memcached::Fast. Usage: clients.pl PORT
# One "PASS name" / "FAIL name" line per check; exit 1 on any failure.
use strict;
use warnings;
use Cache::Memcached;
use Cache::Memcached::Fast;

my $port = shift or die "usage: clients.pl PORT\n";
my $srv = "127.0.0.1:$port";
my ($pass, $fail) = (0, 0);
sub check {
    my ($name, $ok) = @_;
    if ($ok) { print "PASS $name\n"; $pass++ } else { print "FAIL $name\n"; $fail++ }
}

my $c = Cache::Memcached->new({ servers => [$srv] });
check("Cache::Memcached set/get", $c->set("pl:a", "1") && ($c->get("pl:a") // '') eq "1");
check("Cache::Memcached ref value", $c->set("pl:r", { x => [1, 2] }) && $c->get("pl:r")->{x}[1] == 2);
check("Cache::Memcached add", !$c->add("pl:a", "x") && $c->add("pl:new", "x"));
check("Cache::Memcached replace", !$c->replace("pl:zz", "x") && $c->replace("pl:a", "2") && $c->get("pl:a") eq "2");
$c->set("pl:n", 10);
check("Cache::Memcached incr/decr", $c->incr("pl:n", 5) == 15 && $c->decr("pl:n", 20) == 0);
my $m = $c->get_multi("pl:a", "pl:n", "pl:none");
check("Cache::Memcached get_multi", keys(%$m) == 2 && $m->{"pl:a"} eq "2");
check("Cache::Memcached delete", $c->delete("pl:a") && !defined $c->get("pl:a"));
check("Cache::Memcached big value", $c->set("pl:big", "z" x 500000) && length($c->get("pl:big")) == 500000);
my $st = $c->stats(["misc"]);
check("Cache::Memcached stats", defined $st->{hosts}{$srv}{misc}{curr_items});

my $f = Cache::Memcached::Fast->new({ servers => [$srv] });
check("Cache::Memcached::Fast set/get", $f->set("pf:a", "1") && $f->get("pf:a") eq "1");
check("Cache::Memcached::Fast add", !$f->add("pf:a", "x") && $f->add("pf:new", "x"));
check("Cache::Memcached::Fast append/prepend", $f->append("pf:a", "2") && $f->prepend("pf:a", "0") && $f->get("pf:a") eq "012");
my $g = $f->gets("pf:a");
check("Cache::Memcached::Fast gets/cas", $g && $f->cas("pf:a", $g->[0], "new") && !$f->cas("pf:a", $g->[0], "again")
    && $f->get("pf:a") eq "new");
$f->set("pf:n", 7);
check("Cache::Memcached::Fast incr/decr", $f->incr("pf:n", 3) == 10 && $f->decr("pf:n", 100) == 0);
my $mm = $f->get_multi("pf:a", "pf:n", "pf:zz");
check("Cache::Memcached::Fast get_multi", keys(%$mm) == 2);
check("Cache::Memcached::Fast touch", $f->touch("pf:a", 100) && !$f->touch("pf:zz", 100));
check("Cache::Memcached::Fast delete", $f->delete("pf:a") && !defined $f->get("pf:a"));
check("Cache::Memcached::Fast noreply", do { $f->set("pf:q", "x"); $f->get("pf:q") eq "x" });
my $v = $f->server_versions;
check("Cache::Memcached::Fast version", defined $v->{$srv});
check("Cache::Memcached::Fast flush_all", $f->flush_all && !defined $f->get("pf:q"));

print "clients.pl: $pass passed, $fail failed\n";
exit($fail ? 1 : 0);
