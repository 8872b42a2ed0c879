//! What the produce path's kernel work costs on this machine, without a broker.
//!
//! A sender thread pushes `--gib` GiB over loopback TCP in 1 MiB writes; the receiving thread
//! does, per 1 MiB, only what any broker that validates and keeps the bytes must do, in one of
//! these ways, and prints its own CPU time (RUSAGE_THREAD: the sender is not counted) per GB:
//!
//! - `recv`: `recv` into a reused buffer and CRC-32C over it; nothing is written.
//! - `write`: no socket; CRC-32C and a buffered `pwrite` of a hot buffer at the file's end.
//! - `copy`: `recv`, CRC-32C, buffered `pwrite` (what rafka's produce path does).
//! - `splice`: `splice` socket -> pipe -> file (no copy to user space), then CRC-32C over the
//!   bytes read back through a shared mapping of the file, populated with MADV_POPULATE_READ
//!   (the bytes must still be read once to be validated).
//! - `direct`: `recv` into a 4 KiB-aligned buffer, CRC-32C, `pwrite` with O_DIRECT (no copy
//!   into the page cache).
//!
//! `--rcvbuf BYTES` sets SO_RCVBUF on the receiving socket (default: Linux's autotuning).
//!
//! Rounds run every mode in turn after `sync()`, and the summary gives the median and range
//! per mode, because this VM's numbers swing between runs (docs/benchmarks.md).
//!
//! The `unsafe` blocks are thin calls into libc (splice, pipe sizing, mmap, O_DIRECT buffers,
//! getrusage), which std does not wrap; this program is not part of the broker.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

const CHUNK_BYTES: usize = 1 << 20;
const MODES: [&str; 5] = ["recv", "write", "copy", "splice", "direct"];

fn thread_cpu_s() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut r) };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    s(r.ru_utime) + s(r.ru_stime)
}

/// A loopback connection whose far end sends `total` bytes in CHUNK_BYTES writes. With
/// `rcvbuf_bytes`, the receiving socket gets that SO_RCVBUF (which turns off autotuning).
fn loopback_source(total: usize, rcvbuf_bytes: Option<i32>) -> TcpStream {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        let chunk = vec![0x5a_u8; CHUNK_BYTES];
        for _ in 0..total / CHUNK_BYTES {
            if s.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let stream = listener.accept().expect("accept").0;
    if let Some(bytes) = rcvbuf_bytes {
        // SAFETY: setsockopt reads one c_int from a live local.
        let rc = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&bytes as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
    }
    stream
}

/// A 4 KiB-aligned buffer for O_DIRECT.
struct Aligned {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl Aligned {
    fn new(len: usize) -> Self {
        let layout = std::alloc::Layout::from_size_align(len, 4096).expect("layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of memory");
        Aligned { ptr, layout }
    }
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: ptr is a live allocation of layout.size() initialised bytes owned by self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        // SAFETY: allocated in new() with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

fn splice_all(from: i32, from_off: Option<i64>, to: i32, to_off: Option<i64>, len: usize) {
    let (mut fo, mut to_o) = (from_off, to_off);
    let mut done = 0;
    while done < len {
        let fp = fo.as_mut().map_or(std::ptr::null_mut(), |o| o as *mut i64);
        let tp = to_o
            .as_mut()
            .map_or(std::ptr::null_mut(), |o| o as *mut i64);
        // SAFETY: plain syscall on open descriptors; offsets point at live locals or are null.
        let n = unsafe { libc::splice(from, fp, to, tp, len - done, 0) };
        assert!(n > 0, "splice: {}", std::io::Error::last_os_error());
        done += n as usize;
    }
}

/// Receiver CPU seconds for moving `total` bytes with `mode`.
fn run(mode: &str, dir: &Path, total: usize, rcvbuf: Option<i32>) -> (f64, f64) {
    let path = dir.join(format!("rafka-write-floor-{mode}.tmp"));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("open");
    let mut sink = 0u32;
    let (cpu0, t0);
    match mode {
        "recv" | "copy" => {
            let mut src = loopback_source(total, rcvbuf);
            let mut buf = vec![0u8; CHUNK_BYTES];
            (cpu0, t0) = (thread_cpu_s(), Instant::now());
            for i in 0..total / CHUNK_BYTES {
                src.read_exact(&mut buf).expect("recv");
                sink ^= crc32c::crc32c(&buf);
                if mode == "copy" {
                    file.write_all_at(&buf, (i * CHUNK_BYTES) as u64)
                        .expect("pwrite");
                }
            }
        }
        "write" => {
            let buf = vec![0x5a_u8; CHUNK_BYTES];
            (cpu0, t0) = (thread_cpu_s(), Instant::now());
            for i in 0..total / CHUNK_BYTES {
                sink ^= crc32c::crc32c(&buf);
                file.write_all_at(&buf, (i * CHUNK_BYTES) as u64)
                    .expect("pwrite");
            }
        }
        "splice" => {
            let src = loopback_source(total, rcvbuf);
            let mut fds = [0i32; 2];
            // SAFETY: pipe writes two descriptors into the array; F_SETPIPE_SZ takes an int.
            unsafe {
                assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
                libc::fcntl(fds[1], libc::F_SETPIPE_SZ, CHUNK_BYTES as libc::c_int);
            }
            file.set_len(total as u64).expect("set_len");
            // SAFETY: a read-only shared mapping of `total` bytes of a file this function owns
            // and keeps at that length until the mapping is unmapped below.
            let map = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    total,
                    libc::PROT_READ,
                    libc::MAP_SHARED,
                    file.as_raw_fd(),
                    0,
                )
            };
            assert_ne!(map, libc::MAP_FAILED, "mmap");
            (cpu0, t0) = (thread_cpu_s(), Instant::now());
            for i in 0..total / CHUNK_BYTES {
                let pos = i * CHUNK_BYTES;
                let mut got = 0;
                while got < CHUNK_BYTES {
                    let mut n = 0;
                    // Fill the pipe from the socket, then drain it into the file.
                    while n == 0 {
                        // SAFETY: plain syscall on open descriptors.
                        let k = unsafe {
                            libc::splice(
                                src.as_raw_fd(),
                                std::ptr::null_mut(),
                                fds[1],
                                std::ptr::null_mut(),
                                CHUNK_BYTES - got,
                                0,
                            )
                        };
                        assert!(k > 0, "splice in: {}", std::io::Error::last_os_error());
                        n = k as usize;
                    }
                    splice_all(fds[0], None, file.as_raw_fd(), Some((pos + got) as i64), n);
                    got += n;
                }
                // SAFETY: [pos, pos + CHUNK_BYTES) lies inside the mapping and the file, and
                // was written above; nothing truncates the file while the slice lives.
                let bytes = unsafe {
                    let p = (map as *const u8).add(pos);
                    libc::madvise(p as *mut _, CHUNK_BYTES, libc::MADV_POPULATE_READ);
                    std::slice::from_raw_parts(p, CHUNK_BYTES)
                };
                sink ^= crc32c::crc32c(bytes);
            }
            // SAFETY: unmaps exactly the mapping made above; no slice into it is alive.
            unsafe {
                libc::munmap(map, total);
                libc::close(fds[0]);
                libc::close(fds[1]);
            }
        }
        "direct" => {
            let mut src = loopback_source(total, rcvbuf);
            let direct: File = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(&path)
                .expect("open O_DIRECT");
            let mut buf = Aligned::new(CHUNK_BYTES);
            (cpu0, t0) = (thread_cpu_s(), Instant::now());
            for i in 0..total / CHUNK_BYTES {
                src.read_exact(buf.as_mut()).expect("recv");
                sink ^= crc32c::crc32c(buf.as_mut());
                direct
                    .write_all_at(buf.as_mut(), (i * CHUNK_BYTES) as u64)
                    .expect("pwrite O_DIRECT");
            }
        }
        other => panic!("unknown mode {other}"),
    }
    let cpu = thread_cpu_s() - cpu0;
    let wall = t0.elapsed().as_secs_f64();
    std::hint::black_box(sink);
    drop(file);
    let _ = std::fs::remove_file(&path);
    let gb = total as f64 / 1e9;
    (gb * 1e3 / wall, cpu / gb)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut dir = PathBuf::from(".");
    let (mut gib, mut rounds, mut warm_gib) = (1usize, 5usize, 8usize);
    let mut rcvbuf = None;
    let mut modes: Vec<String> = MODES.iter().map(|m| m.to_string()).collect();
    while let Some(a) = args.next() {
        let mut val = |name: &str| {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        match a.as_str() {
            "--dir" => dir = PathBuf::from(val("--dir")),
            "--gib" => gib = val("--gib").parse().expect("--gib N"),
            "--rounds" => rounds = val("--rounds").parse().expect("--rounds N"),
            "--warm-gib" => warm_gib = val("--warm-gib").parse().expect("--warm-gib N"),
            "--rcvbuf" => rcvbuf = Some(val("--rcvbuf").parse().expect("--rcvbuf BYTES")),
            "--modes" => modes = val("--modes").split(',').map(str::to_string).collect(),
            _ => {
                eprintln!("usage: rafka-write-floor [--dir D] [--gib N] [--rounds N] [--warm-gib N] [--rcvbuf BYTES] [--modes {}]", MODES.join(","));
                std::process::exit(2);
            }
        }
    }
    // The VM backs guest memory lazily (docs/benchmarks.md): touch memory once so the page
    // cache grows into backed pages, as tests/bench/bench.py does.
    if warm_gib > 0 {
        let mut v = vec![0u8; warm_gib << 30];
        for i in (0..v.len()).step_by(4096) {
            v[i] = 1;
        }
        std::hint::black_box(&v);
    }
    let total = gib << 30;
    let mut results: Vec<(String, Vec<(f64, f64)>)> =
        modes.iter().map(|m| (m.clone(), Vec::new())).collect();
    for round in 1..=rounds {
        for (mode, out) in results.iter_mut() {
            // SAFETY: sync has no arguments and cannot fail.
            unsafe { libc::sync() };
            let (mbs, cpu) = run(mode, &dir, total, rcvbuf);
            println!("round {round} {mode:>6}: {mbs:6.0} MB/s, {cpu:.3} CPU-s/GB");
            out.push((mbs, cpu));
        }
    }
    println!("\n| mode | MB/s (median) | receiver CPU-s per GB: median | min | max |");
    println!("|---|---:|---:|---:|---:|");
    for (mode, mut v) in results {
        v.sort_by(|a, b| a.1.total_cmp(&b.1));
        let cpu_med = v[v.len() / 2].1;
        let mut mbs: Vec<f64> = v.iter().map(|x| x.0).collect();
        mbs.sort_by(f64::total_cmp);
        println!(
            "| {mode} | {:.0} | {cpu_med:.3} | {:.3} | {:.3} |",
            mbs[mbs.len() / 2],
            v[0].1,
            v[v.len() - 1].1
        );
    }
}
