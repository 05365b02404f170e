//! `stats` and its subcommands, for both protocols.
//!
//! Each report is a list of `(name, value)` pairs handed to an emitter: the
//! text protocol prints `STAT <name> <value>\r\n` and `END\r\n`, the binary
//! one sends a packet per pair and an empty one to end. Names and order are
//! memcached 1.6.18's; what this server has no counterpart for (slab
//! rebalancing, the LRU maintainer, extstore) is printed as memcached prints
//! it when idle (`0`), so tools that parse the list find every name.

use std::io::Write;
use std::sync::atomic::Ordering;

use super::text::{reply, Tokens};
use super::VERSION;
use crate::context::{ConnInfo, Context};

/// Receives one `(name, value)` pair of a report.
pub(super) type Emit<'a> = dyn FnMut(&[u8], &[u8]) + 'a;

/// Appends one text `STAT` line.
fn ascii(out: &mut Vec<u8>, k: &[u8], v: &[u8]) {
    out.extend_from_slice(b"STAT ");
    out.extend_from_slice(k);
    if !v.is_empty() {
        out.push(b' ');
        out.extend_from_slice(v);
    }
    out.extend_from_slice(b"\r\n");
}

/// `stats [<sub> ...]` in the text protocol.
pub(super) fn text(ctx: &Context, conn: &ConnInfo, t: &Tokens<'_>, out: &mut Vec<u8>) {
    // NOTE: what this connection counted in the current batch is folded in
    // only after it, unless the connection is registered; fold it now.
    ctx.fold_unregistered(conn);
    let nt = t.ntokens();
    let sub = t.get(1);
    let mut emit = |k: &[u8], v: &[u8]| ascii(out, k, v);
    match sub {
        b"" => general(ctx, &mut emit),
        b"reset" => {
            reset(ctx);
            return reply(out, false, b"RESET");
        }
        b"detail" => {
            let msg: &[u8] = match t.get(2) {
                b"on" | b"off" if nt >= 4 => b"OK",
                b"dump" if nt >= 4 => b"END",
                _ => b"CLIENT_ERROR usage: stats detail on|off|dump",
            };
            return reply(out, false, msg);
        }
        b"settings" => settings(ctx, &mut emit),
        b"cachedump" => {
            let msg: &[u8] = if nt < 5 {
                b"CLIENT_ERROR bad command line"
            } else {
                match (super::parse_u32(t.get(2)), super::parse_u32(t.get(3))) {
                    (Some(id), Some(_)) if id >= 64 => b"CLIENT_ERROR Illegal slab id",
                    (Some(_), Some(_)) => b"END",
                    _ => b"CLIENT_ERROR bad command line format",
                }
            };
            return reply(out, false, msg);
        }
        b"conns" => conns(ctx, conn, &mut emit),
        b"percore" => {
            for (name, value) in percore::stats() {
                emit(name.as_bytes(), value.to_string().as_bytes());
            }
        }
        other => {
            if !engine(ctx, other, &mut emit) {
                return reply(out, false, b"ERROR");
            }
        }
    }
    out.extend_from_slice(b"END\r\n");
}

/// The reports memcached's `get_stats` answers (`items`, `slabs`, `sizes`);
/// `false` for an unknown name.
pub(super) fn engine(ctx: &Context, sub: &[u8], emit: &mut Emit<'_>) -> bool {
    let s = ctx.stats.store_view(ctx.store.stats());
    let n = |emit: &mut Emit<'_>, k: &str, v: u64| emit(k.as_bytes(), v.to_string().as_bytes());
    match sub {
        b"items" => {
            if s.curr_items == 0 {
                return true;
            }
            n(emit, "items:1:number", s.curr_items);
            for k in ["number_hot", "number_warm"] {
                n(emit, &format!("items:1:{k}"), 0);
            }
            n(emit, "items:1:number_cold", s.curr_items);
            for k in ["age_hot", "age_warm", "age"] {
                n(emit, &format!("items:1:{k}"), 0);
            }
            n(emit, "items:1:mem_requested", s.bytes);
            n(emit, "items:1:evicted", s.evictions);
            for k in ["evicted_nonzero", "evicted_time", "outofmemory", "tailrepairs"] {
                n(emit, &format!("items:1:{k}"), 0);
            }
            n(emit, "items:1:reclaimed", s.reclaimed);
            n(emit, "items:1:expired_unfetched", s.expired_unfetched);
            n(emit, "items:1:evicted_unfetched", s.evicted_unfetched);
            for k in [
                "evicted_active",
                "crawler_reclaimed",
                "crawler_items_checked",
                "lrutail_reflocked",
                "moves_to_cold",
                "moves_to_warm",
                "moves_within_lru",
                "direct_reclaims",
                "hits_to_hot",
                "hits_to_warm",
                "hits_to_cold",
                "hits_to_temp",
            ] {
                n(emit, &format!("items:1:{k}"), 0);
            }
        }
        b"slabs" => {
            let active = u64::from(s.curr_items > 0);
            if active == 1 {
                let st = &ctx.stats;
                let c = ctx.counted();
                n(emit, "1:used_chunks", s.curr_items);
                n(emit, "1:get_hits", c.get_hits);
                n(emit, "1:cmd_set", c.cmd_set);
                n(emit, "1:delete_hits", st.delete_hits.sum());
                n(emit, "1:incr_hits", st.incr_hits.sum());
                n(emit, "1:decr_hits", st.decr_hits.sum());
                n(emit, "1:cas_hits", st.cas_hits.sum());
                n(emit, "1:cas_badval", st.cas_badval.sum());
                n(emit, "1:touch_hits", st.touch_hits.sum());
            }
            n(emit, "active_slabs", active);
            n(emit, "total_malloced", s.used_bytes);
        }
        b"sizes" => emit(b"sizes_status", b"disabled"),
        _ => return false,
    }
    true
}

/// `stats reset`.
pub(super) fn reset(ctx: &Context) {
    ctx.reset_stats();
}

/// `getrusage(RUSAGE_SELF)`: user and system time as `sec.usec`.
fn rusage() -> (String, String) {
    // SAFETY: an all-zero rusage is a valid value of the plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is valid and writable; RUSAGE_SELF needs nothing else.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let f = |t: libc::timeval| format!("{}.{:06}", t.tv_sec, t.tv_usec);
    (f(ru.ru_utime), f(ru.ru_stime))
}

/// The general statistics (`stats` with no argument), in memcached's order.
pub(super) fn general(ctx: &Context, emit: &mut Emit<'_>) {
    let st = &ctx.stats;
    let c = ctx.counted();
    let s = st.store_view(ctx.store.stats());
    let (user, system) = rusage();
    // ORDERING: statistics.
    let curr = st.curr_connections.load(Ordering::Relaxed);
    let mut buf = Vec::with_capacity(32);
    let mut n = |emit: &mut Emit<'_>, k: &str, v: u64| {
        buf.clear();
        let _ = write!(buf, "{v}");
        emit(k.as_bytes(), &buf);
    };
    n(emit, "pid", u64::from(std::process::id()));
    n(emit, "uptime", ctx.uptime());
    n(emit, "time", ctx.store.clock().unix_now().max(0) as u64);
    emit(b"version", VERSION.as_bytes());
    emit(b"libevent", b"percore");
    n(emit, "pointer_size", usize::BITS.into());
    emit(b"rusage_user", user.as_bytes());
    emit(b"rusage_system", system.as_bytes());
    n(emit, "max_connections", ctx.settings.conn_limit as u64);
    n(emit, "curr_connections", curr);
    n(emit, "total_connections", st.total_connections.sum());
    n(emit, "rejected_connections", st.rejected_connections.sum());
    n(emit, "connection_structures", curr + 1);
    for k in [
        "response_obj_oom",
        "response_obj_count",
        "response_obj_bytes",
        "read_buf_count",
        "read_buf_bytes",
        "read_buf_bytes_free",
        "read_buf_oom",
        "reserved_fds",
    ] {
        n(emit, k, 0);
    }
    n(emit, "cmd_get", c.cmd_get);
    n(emit, "cmd_set", c.cmd_set);
    n(emit, "cmd_flush", st.cmd_flush.sum());
    n(emit, "cmd_touch", st.cmd_touch.sum());
    n(emit, "cmd_meta", st.cmd_meta.sum());
    n(emit, "get_hits", c.get_hits);
    n(emit, "get_misses", c.get_misses);
    n(emit, "get_expired", s.get_expired);
    n(emit, "get_flushed", s.get_flushed);
    n(emit, "delete_misses", st.delete_misses.sum());
    n(emit, "delete_hits", st.delete_hits.sum());
    n(emit, "incr_misses", st.incr_misses.sum());
    n(emit, "incr_hits", st.incr_hits.sum());
    n(emit, "decr_misses", st.decr_misses.sum());
    n(emit, "decr_hits", st.decr_hits.sum());
    n(emit, "cas_misses", st.cas_misses.sum());
    n(emit, "cas_hits", st.cas_hits.sum());
    n(emit, "cas_badval", st.cas_badval.sum());
    n(emit, "touch_hits", st.touch_hits.sum());
    n(emit, "touch_misses", st.touch_misses.sum());
    n(emit, "store_too_large", st.store_too_large.sum());
    n(emit, "store_no_memory", st.store_no_memory.sum());
    n(emit, "auth_cmds", 0);
    n(emit, "auth_errors", 0);
    n(emit, "bytes_read", c.bytes_read);
    n(emit, "bytes_written", c.bytes_written);
    n(emit, "limit_maxbytes", s.limit_bytes);
    n(emit, "accepting_conns", u64::from(!ctx.shutting_down()));
    n(emit, "listen_disabled_num", 0);
    n(emit, "time_in_listen_disabled_us", 0);
    n(emit, "threads", ctx.settings.threads as u64);
    for k in [
        "conn_yields",
        "hash_power_level",
        "hash_bytes",
        "hash_is_expanding",
        "slab_reassign_rescues",
        "slab_reassign_chunk_rescues",
        "slab_reassign_evictions_nomem",
        "slab_reassign_inline_reclaim",
        "slab_reassign_busy_items",
        "slab_reassign_busy_deletes",
        "slab_reassign_running",
        "slabs_moved",
        "lru_crawler_running",
        "lru_crawler_starts",
        "lru_maintainer_juggles",
        "malloc_fails",
        "log_worker_dropped",
        "log_worker_written",
        "log_watcher_skipped",
        "log_watcher_sent",
        "log_watchers",
        "unexpected_napi_ids",
        "round_robin_fallback",
    ] {
        n(emit, k, 0);
    }
    n(emit, "bytes", s.bytes);
    n(emit, "curr_items", s.curr_items);
    n(emit, "total_items", s.total_items);
    n(emit, "slab_global_page_pool", 0);
    n(emit, "expired_unfetched", s.expired_unfetched);
    n(emit, "evicted_unfetched", s.evicted_unfetched);
    n(emit, "evicted_active", 0);
    n(emit, "evictions", s.evictions);
    n(emit, "reclaimed", s.reclaimed);
    for k in [
        "crawler_reclaimed",
        "crawler_items_checked",
        "lrutail_reflocked",
        "moves_to_cold",
        "moves_to_warm",
        "moves_within_lru",
        "direct_reclaims",
        "lru_bumps_dropped",
    ] {
        n(emit, k, 0);
    }
}

/// `stats settings`: the settings memcached reports that apply here, in its
/// order and spelling.
pub(super) fn settings(ctx: &Context, emit: &mut Emit<'_>) {
    let c = &ctx.settings;
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    // ORDERING: a setting; see `verbosity`.
    let verbosity = ctx.verbosity.load(Ordering::Relaxed);
    let idle = c.idle_timeout.map_or(0, |d| d.as_secs());
    let pairs: Vec<(&str, String)> = vec![
        ("maxbytes", c.memory_limit.to_string()),
        ("maxconns", c.conn_limit.to_string()),
        ("tcpport", c.port.to_string()),
        ("udpport", c.udp_port.to_string()),
        ("inter", c.listen.to_string()),
        ("verbosity", verbosity.to_string()),
        ("oldest", "0".into()),
        ("evictions", "on".into()),
        ("domain_socket", "NULL".into()),
        ("umask", "700".into()),
        ("shutdown_command", yes_no(c.enable_shutdown).into()),
        ("growth_factor", "1.25".into()),
        ("chunk_size", "48".into()),
        ("num_threads", c.threads.to_string()),
        ("num_threads_per_udp", c.threads.to_string()),
        ("stat_key_prefix", ":".into()),
        ("detail_enabled", "no".into()),
        ("reqs_per_event", "20".into()),
        ("cas_enabled", "yes".into()),
        ("tcp_backlog", "1024".into()),
        ("binding_protocol", "auto-negotiate".into()),
        ("auth_enabled_sasl", "no".into()),
        ("auth_enabled_ascii", "no".into()),
        ("item_size_max", c.max_item_size.to_string()),
        ("maxconns_fast", "yes".into()),
        ("hashpower_init", "0".into()),
        ("flush_enabled", "yes".into()),
        ("dump_enabled", "yes".into()),
        ("idle_timeout", idle.to_string()),
    ];
    for (k, v) in pairs {
        emit(k.as_bytes(), v.as_bytes());
    }
}

/// `stats conns`: one group per open connection, keyed by descriptor.
fn conns(ctx: &Context, me: &ConnInfo, emit: &mut Emit<'_>) {
    let now = ctx.store.clock().now();
    for c in ctx.conns() {
        let fd = c.fd;
        emit(format!("{fd}:addr").as_bytes(), c.addr.as_bytes());
        emit(format!("{fd}:listen_addr").as_bytes(), c.listen_addr.as_bytes());
        let state: &[u8] = if c.fd == me.fd { b"conn_parse_cmd" } else { b"conn_waiting" };
        emit(format!("{fd}:state").as_bytes(), state);
        // ORDERING: a statistic.
        let last = c.last_cmd.load(Ordering::Relaxed);
        emit(format!("{fd}:secs_since_last_cmd").as_bytes(), now.saturating_sub(last).to_string().as_bytes());
    }
}
