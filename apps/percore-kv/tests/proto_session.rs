//! `Session` driven with byte sequences: pipelining, values split across
//! reads, swallowing, line bounds, noreply, counters.

mod proto_support;

use percore_kv::config::Settings;
use percore_kv::proto::{MAX_GET_LINE, MAX_LINE};
use proto_support::{show, Conn};

fn stat(c: &mut Conn, name: &str) -> u64 {
    let out = c.ask(b"stats\r\n");
    let text = String::from_utf8(out).unwrap();
    let prefix = format!("STAT {name} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("no {name} in {text}")).parse().unwrap()
}

#[test]
fn pipelined_requests_are_answered_in_order_at_every_split() {
    let req = b"set a 0 0 3\r\nabc\r\nget a\r\nmg a v\r\nincr a 1\r\nset n 0 0 1\r\n5\r\nincr n 2\r\nget n a\r\n";
    let want = b"STORED\r\nVALUE a 0 3\r\nabc\r\nEND\r\nVA 3\r\nabc\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\nSTORED\r\n7\r\nVALUE n 0 1\r\n7\r\nVALUE a 0 3\r\nabc\r\nEND\r\n";
    for split in 0..=req.len() {
        let mut c = Conn::new();
        c.feed(&req[..split]);
        c.feed(&req[split..]);
        assert_eq!(show(&c.out), show(want), "split at {split}");
        assert!(c.buf.is_empty());
    }
}

#[test]
fn a_value_being_read_says_how_much_it_needs() {
    let mut c = Conn::new();
    let p = c.feed(b"set k 0 0 10\r\nabc");
    assert_eq!(p.consumed, 0);
    assert_eq!(p.want, 14 + 12);
    let p = c.feed(b"defghij\r\n");
    assert_eq!(p.want, 0);
    assert_eq!(c.take(), b"STORED\r\n");
}

#[test]
fn too_large_values_are_swallowed_across_reads_without_buffering() {
    let mut c = Conn::new();
    let size = 3 << 20;
    let p = c.feed(format!("set big 0 0 {size}\r\n").as_bytes());
    assert_eq!(c.take(), b"SERVER_ERROR object too large for cache\r\n");
    assert_eq!(p.want, 0);
    let chunk = vec![b'x'; 64 << 10];
    let mut left = size + 2;
    while left > chunk.len() {
        let p = c.feed(&chunk);
        assert_eq!(p.consumed, chunk.len(), "swallowed as it arrives");
        assert!(c.buf.is_empty());
        left -= chunk.len();
    }
    let mut tail = vec![b'x'; left - 2];
    tail.extend_from_slice(b"\r\nget big\r\n");
    c.feed(&tail);
    assert_eq!(c.take(), b"END\r\n");
    assert_eq!(stat(&mut c, "store_too_large"), 1);
}

#[test]
fn a_gigabyte_announced_is_swallowed_as_a_count() {
    let mut c = Conn::new();
    c.feed(b"set big 0 0 1073741824 noreply\r\n");
    assert!(c.out.is_empty(), "noreply hides the error");
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..4 {
        let p = c.feed(&chunk);
        assert_eq!(p.consumed, chunk.len());
    }
    assert!(c.buf.is_empty());
}

#[test]
fn the_size_limit_is_the_stores() {
    let mut c = Conn::with(Settings { max_item_size: 1024, memory_limit: 1 << 20, ..Settings::default() });
    let fits = 1024 - 48 - 1 - 1 - 2;
    let ok = format!("set k 0 0 {fits}\r\n{}\r\n", "v".repeat(fits));
    assert_eq!(c.ask(ok.as_bytes()), b"STORED\r\n");
    let big = format!("set k 0 0 {}\r\n{}\r\nget k\r\n", fits + 1, "v".repeat(fits + 1));
    assert_eq!(c.ask(big.as_bytes()), b"SERVER_ERROR object too large for cache\r\nEND\r\n");
}

#[test]
fn a_line_without_newline_closes_unless_it_is_a_get() {
    let mut c = Conn::new();
    let p = c.feed(&vec![b'a'; MAX_LINE]);
    assert!(!p.close);
    let p = c.feed(b"a");
    assert!(p.close);

    let mut c = Conn::new();
    let mut line = b"get ".to_vec();
    while line.len() < 1 << 20 {
        line.extend_from_slice(b"somekey ");
    }
    let p = c.feed(&line);
    assert!(!p.close, "a large multiget may grow");
    let p = c.feed(&vec![b'k'; MAX_GET_LINE]);
    assert!(p.close, "but not without bound");
}

#[test]
fn a_five_thousand_key_get_works() {
    let mut c = Conn::new();
    c.ask(b"set key17 0 0 2\r\nhi\r\n");
    let mut line = b"get".to_vec();
    for i in 0..5000 {
        line.extend_from_slice(format!(" key{i}").as_bytes());
    }
    line.extend_from_slice(b"\r\n");
    c.feed_chunked(&line, 1400);
    assert_eq!(c.take(), b"VALUE key17 0 2\r\nhi\r\nEND\r\n");
    assert_eq!(stat(&mut c, "cmd_get"), 5000);
    assert_eq!(stat(&mut c, "get_hits"), 1);
}

#[test]
fn output_pauses_at_the_high_water_mark() {
    let mut c = Conn::new();
    let v = "v".repeat(512 << 10);
    c.ask(format!("set k 0 0 {}\r\n{v}\r\n", v.len()).as_bytes());
    let reqs = b"get k\r\n".repeat(20);
    let p = c.session.process(&c.ctx, &c.info, &reqs, &mut c.out);
    assert!(p.consumed < reqs.len(), "stopped early");
    assert!(c.out.len() < percore_kv::proto::OUT_HIGH_WATER + v.len() + 100);
}

#[test]
fn noreply_hides_replies_and_errors() {
    let mut c = Conn::new();
    let out = c.ask(
        b"set a 0 0 1 noreply\r\n1\r\nincr a 5 noreply\r\ntouch a 0 noreply\r\ndelete b noreply\r\n\
          incr a x noreply\r\nflush_all noreply\r\nverbosity 1 noreply\r\nmn\r\n",
    );
    assert_eq!(out, b"MN\r\n");
}

#[test]
fn counters_follow_the_commands_and_reset() {
    let mut c = Conn::new();
    c.ask(b"set a 0 0 1\r\n1\r\nget a b\r\ngets a\r\ndelete a\r\ndelete a\r\nincr x 1\r\ndecr x 1\r\n");
    c.ask(b"set n 0 0 1\r\n1\r\nincr n 1\r\ndecr n 1\r\ntouch n 0\r\ntouch q 0\r\ngat 0 n q\r\n");
    c.ask(b"cas n 0 0 1 999\r\n1\r\ncas q 0 0 1 1\r\n1\r\nflush_all\r\nme n\r\n");
    for (name, v) in [
        ("cmd_get", 3),
        ("cmd_set", 4),
        ("get_hits", 2),
        ("get_misses", 1),
        ("delete_hits", 1),
        ("delete_misses", 1),
        ("incr_hits", 1),
        ("incr_misses", 1),
        ("decr_hits", 1),
        ("decr_misses", 1),
        ("cmd_touch", 4),
        ("touch_hits", 2),
        ("touch_misses", 2),
        ("cas_badval", 1),
        ("cas_misses", 1),
        ("cmd_flush", 1),
        ("cmd_meta", 1),
    ] {
        assert_eq!(stat(&mut c, name), v, "{name}");
    }
    assert_eq!(c.ask(b"stats reset\r\n"), b"RESET\r\n");
    assert_eq!(stat(&mut c, "cmd_get"), 0);
    assert_eq!(stat(&mut c, "total_items"), 0);
}

#[test]
fn stats_print_memcached_s_names_in_memcached_s_order() {
    let mut c = Conn::new();
    let text = String::from_utf8(c.ask(b"stats\r\n")).unwrap();
    let names: Vec<&str> = text.lines().filter_map(|l| l.split(' ').nth(1)).collect();
    let order = [
        "pid",
        "uptime",
        "time",
        "version",
        "libevent",
        "pointer_size",
        "rusage_user",
        "rusage_system",
        "max_connections",
        "curr_connections",
        "total_connections",
        "cmd_get",
        "get_hits",
        "store_no_memory",
        "bytes_read",
        "bytes_written",
        "limit_maxbytes",
        "threads",
        "bytes",
        "curr_items",
        "total_items",
        "evictions",
        "reclaimed",
    ];
    let pos: Vec<usize> =
        order.iter().map(|n| names.iter().position(|m| m == n).unwrap_or_else(|| panic!("{n} missing"))).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{names:?}");
    assert!(text.ends_with("END\r\n"));
    let settings = String::from_utf8(c.ask(b"stats settings\r\n")).unwrap();
    for n in ["maxbytes 67108864", "maxconns 1024", "tcpport 11211", "item_size_max 1048576", "idle_timeout 0"] {
        assert!(settings.contains(&format!("STAT {n}\r\n")), "{n}");
    }
    let conns = String::from_utf8(c.ask(b"stats conns\r\n")).unwrap();
    assert_eq!(conns, "END\r\n", "no connection registered in this test");
    let percore = String::from_utf8(c.ask(b"stats percore\r\n")).unwrap();
    assert!(percore.ends_with("END\r\n"));
    let items = String::from_utf8(c.ask(b"set a 0 0 1\r\nx\r\nstats items\r\nstats slabs\r\n")).unwrap();
    assert!(items.contains("STAT items:1:number 1\r\n"), "{items}");
    assert!(items.contains("STAT active_slabs 1\r\n"), "{items}");
}

#[test]
fn stats_conns_lists_registered_connections() {
    let mut c = Conn::new();
    c.ctx.register_conn(std::sync::Arc::new(percore_kv::context::ConnInfo::new(
        9,
        "tcp:127.0.0.1:40000".into(),
        "tcp:127.0.0.1:11211".into(),
    )));
    let text = String::from_utf8(c.ask(b"stats conns\r\n")).unwrap();
    assert!(
        text.starts_with("STAT 9:addr tcp:127.0.0.1:40000\r\nSTAT 9:listen_addr tcp:127.0.0.1:11211\r\n"),
        "{text}"
    );
    assert!(text.contains("STAT 9:state conn_parse_cmd\r\n"));
}

#[test]
fn shutdown_only_when_enabled() {
    let mut c = Conn::new();
    assert_eq!(c.ask(b"shutdown\r\n"), b"ERROR: shutdown not enabled\r\n");
    assert!(!c.ctx.shutting_down());
    let mut c = Conn::with(Settings { enable_shutdown: true, ..Settings::default() });
    assert_eq!(c.ask(b"shutdown bogus\r\n"), b"CLIENT_ERROR invalid shutdown mode\r\n");
    let p = c.feed(b"shutdown\r\n");
    assert!(p.close);
    assert!(c.ctx.shutting_down());
}

#[test]
fn verbosity_sets_the_level() {
    let mut c = Conn::new();
    assert_eq!(c.ask(b"verbosity 5\r\n"), b"OK\r\n");
    assert_eq!(c.ctx.verbosity.load(std::sync::atomic::Ordering::Relaxed), 2);
}

#[test]
fn expiry_and_touch_follow_the_clock() {
    let mut c = Conn::new();
    c.ask(b"set a 0 10 1\r\nx\r\nset b 0 10 1\r\ny\r\ntouch b 100\r\n");
    c.ctx.store.clock().advance(11);
    assert_eq!(c.ask(b"get a b\r\n"), b"VALUE b 0 1\r\ny\r\nEND\r\n");
    assert_eq!(c.ask(b"mg b t v\r\n"), b"VA 1 t89\r\ny\r\n");
    assert_eq!(c.ask(b"gat -1 b\r\nget b\r\n"), b"VALUE b 0 1\r\ny\r\nEND\r\nEND\r\n");
}

#[test]
fn flush_all_with_a_delay() {
    let mut c = Conn::new();
    c.ask(b"set a 0 0 1\r\nx\r\n");
    assert_eq!(c.ask(b"flush_all 10\r\nget a\r\n"), b"OK\r\nVALUE a 0 1\r\nx\r\nEND\r\n");
    c.ctx.store.clock().advance(11);
    assert_eq!(c.ask(b"get a\r\n"), b"END\r\n");
}

#[test]
fn two_connections_share_the_store() {
    let mut a = Conn::new();
    let mut b = Conn::on(a.ctx.clone());
    a.ask(b"set k 0 0 1\r\nv\r\n");
    assert_eq!(b.ask(b"get k\r\n"), b"VALUE k 0 1\r\nv\r\nEND\r\n");
}
