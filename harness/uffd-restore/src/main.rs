// SPDX-License-Identifier: GPL-2.0

//! uffd-restore: guest memory restored through userfaultfd minor faults, as a VMM does it.
//!
//! After a snapshot is loaded, or while a postcopy migration streams pages in, a VMM has the
//! guest's memory in a shmem file (a memfd) whose page cache it fills itself, and the guest runs
//! on a mapping of that file registered for minor faults: a vCPU that touches a page the VMM has
//! not declared restored yet stops with a minor fault, and the VMM's handler thread resolves it
//! with `UFFDIO_CONTINUE`, which maps the page cache into the guest mapping. This program does
//! the same with the `userfaultfd` crate:
//!
//! 1. "restore": a memfd of `--size-mib` MiB is filled through a mapping of its own (with
//!    `--thp`, one with `MADV_HUGEPAGE`, so that the page cache holds PMD-sized folios; the
//!    kernel's `shmem_enabled` must be `advise`, `always` or `force`);
//! 2. "run": a second mapping of the memfd, aligned to 2 MiB, is registered for minor faults,
//!    and `--threads` vCPU threads read every page of it once, in a random order;
//! 3. one handler thread resolves each minor fault with `UFFDIO_CONTINUE` of the faulting page,
//!    or with `--thp` of the whole 2 MiB around it (which a kernel may map with one PMD).
//!
//! It checks that every page reads what the restore wrote, and prints one line:
//!
//! ```text
//! bench impl=rust-batch test=restore mem=thp pages=262144 threads=4 faults=512 ns=... \
//!     ns_per_page=... pages_per_sec=...
//! ```
//!
//! `ns` is `CLOCK_MONOTONIC` from the start of the vCPU threads to the end of the last one:
//! under QEMU with `-icount shift=0` a guest instruction. `impl` is the kernel's
//! `userfaultfd/mfill_impl` in debugfs, `-` where there is none.
//!
//! Exit status: 0, 1 if a page read wrong or a `UFFDIO_CONTINUE` failed, 2 for a usage error,
//! 4 if the kernel could not give what was asked (no userfaultfd, no PMD-sized folios).

use std::{
    fs,
    io::{self, Write},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    process::exit,
    ptr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Barrier,
    },
    thread,
};

use userfaultfd::{Event, FaultKind, RegisterMode, Uffd, UffdBuilder};

/// What the restore writes at the start of every page: the page's index, scrambled.
fn page_word(idx: usize) -> u64 {
    (idx as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x7265_7374_6f72_6521
}

struct Args {
    size_mib: usize,
    threads: usize,
    thp: bool,
    seed: u64,
}

fn usage() -> ! {
    eprintln!("usage: uffd-restore [--size-mib N (1024)] [--threads N (4)] [--thp] [--seed N (1)]");
    exit(2);
}

fn parse_args() -> Args {
    let mut args = Args {
        size_mib: 1024,
        threads: 4,
        thp: false,
        seed: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut num = || -> u64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage())
        };
        match a.as_str() {
            "--size-mib" => args.size_mib = num() as usize,
            "--threads" => args.threads = num() as usize,
            "--seed" => args.seed = num(),
            "--thp" => args.thp = true,
            _ => usage(),
        }
    }
    if args.size_mib == 0 || args.threads == 0 {
        usage();
    }
    args
}

fn fail(code: i32, what: &str, err: impl std::fmt::Display) -> ! {
    eprintln!("uffd-restore: {what}: {err}");
    exit(code);
}

/// `CLOCK_MONOTONIC` in ns: under QEMU `-icount shift=0`, guest instructions.
fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A shared mapping of a file, unmapped on drop.
struct Mapping {
    addr: *mut u8,
    len: usize,
}

// SAFETY: The mapping is plain memory; the threads that share it only read it.
unsafe impl Send for Mapping {}
// SAFETY: As above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` shared and writable at an address aligned to `align`.
    fn new(fd: &OwnedFd, len: usize, align: usize) -> io::Result<Self> {
        // SAFETY: A new anonymous reservation; nothing else refers to it.
        let resv = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len + align,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if resv == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let start = (resv as usize).next_multiple_of(align);
        // SAFETY: [start, start + len) lies in our reservation, which MAP_FIXED replaces.
        let addr = unsafe {
            libc::mmap(
                start as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                fd.as_raw_fd(),
                0,
            )
        };
        let err = io::Error::last_os_error();
        // SAFETY: The parts of the reservation around the mapping are ours.
        unsafe {
            libc::munmap(resv, start - resv as usize);
            libc::munmap(
                (start + len) as *mut libc::c_void,
                resv as usize + align - start,
            );
        }
        if addr == libc::MAP_FAILED {
            return Err(err);
        }
        Ok(Self {
            addr: addr.cast(),
            len,
        })
    }

    fn page(&self, idx: usize, page: usize) -> *mut u8 {
        self.addr.wrapping_add(idx * page)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: The mapping is ours.
        unsafe { libc::munmap(self.addr.cast(), self.len) };
    }
}

/// The value in kB of `key` in the /proc/self/smaps entry of the mapping at `addr`.
fn smaps_kb(addr: *const u8, key: &str) -> Option<u64> {
    let want = addr as usize;
    let smaps = fs::read_to_string("/proc/self/smaps").ok()?;
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                inside = (a..b).contains(&want);
                continue;
            }
        }
        if inside {
            if let Some(v) = line.strip_prefix(key).and_then(|r| r.strip_prefix(':')) {
                return v.split_whitespace().next()?.parse().ok();
            }
        }
    }
    None
}

/// A random permutation of `0..n` (Fisher-Yates with xorshift64*).
fn permutation(n: usize, seed: u64) -> Vec<u32> {
    let mut x = seed.max(1);
    let mut next = || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut v: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        v.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    v
}

/// Resolves minor faults until `stop` becomes readable: each with `UFFDIO_CONTINUE` of the
/// `unit`-aligned range around the faulting address, which wakes every thread waiting in it.
/// Returns (faults, failures).
fn handler(uffd: &Uffd, stop: &OwnedFd, unit: usize, page: usize) -> (u64, u64) {
    let (mut faults, mut failures) = (0, 0);
    loop {
        let mut pfd = [
            libc::pollfd {
                fd: uffd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `pfd` is a valid array of two pollfds.
        if unsafe { libc::poll(pfd.as_mut_ptr(), 2, -1) } < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return (faults, failures + 1);
        }
        if pfd[1].revents != 0 {
            return (faults, failures);
        }
        loop {
            match uffd.read_event() {
                Ok(Some(Event::Pagefault {
                    kind: FaultKind::Minor,
                    addr,
                    ..
                })) => {
                    faults += 1;
                    let start = (addr as usize) & !(unit - 1);
                    match uffd.r#continue(start as *mut libc::c_void, unit, true) {
                        Ok(n) if n as usize == unit => {}
                        // Another fault in the same range was resolved first (EEXIST), or
                        // only part of it could be mapped: make sure this thread runs on.
                        _ => {
                            let page_start = (addr as usize) & !(page - 1);
                            if uffd.wake(page_start as *mut libc::c_void, page).is_err() {
                                failures += 1;
                            }
                        }
                    }
                }
                Ok(Some(_)) => failures += 1,
                Ok(None) => break,
                Err(_) => {
                    failures += 1;
                    break;
                }
            }
        }
    }
}

fn main() {
    let args = parse_args();
    // SAFETY: Always safe to call.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let pmd = fs::read_to_string("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(2 << 20);
    let len = args.size_mib << 20;
    if len % pmd != 0 {
        fail(2, "--size-mib", "must be a multiple of the PMD size");
    }
    let npages = len / page;
    let imp = fs::read_to_string("/sys/kernel/debug/userfaultfd/mfill_impl")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "-".to_string());

    // 1. The restore: the page cache of a memfd, filled through a mapping of its own.
    // SAFETY: The name is a NUL-terminated string.
    let fd = unsafe { libc::memfd_create(c"uffd-restore".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        fail(4, "memfd_create", io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new file descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `fd` is a valid memfd.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
        fail(4, "ftruncate", io::Error::last_os_error());
    }
    {
        let fill = Mapping::new(&fd, len, pmd).unwrap_or_else(|e| fail(4, "mmap", e));
        // SAFETY: The range is our mapping.
        if args.thp && unsafe { libc::madvise(fill.addr.cast(), len, libc::MADV_HUGEPAGE) } != 0 {
            fail(4, "MADV_HUGEPAGE", io::Error::last_os_error());
        }
        for idx in 0..npages {
            // SAFETY: The page is inside our writable mapping.
            unsafe { ptr::write_volatile(fill.page(idx, page).cast::<u64>(), page_word(idx)) };
        }
        let huge = smaps_kb(fill.addr, "ShmemPmdMapped").unwrap_or(0) << 10;
        if args.thp && huge != len as u64 {
            fail(
                4,
                "--thp",
                format!(
                    "only {huge} of {len} bytes got PMD-sized folios (shmem_enabled must be \
                     advise, always or force)"
                ),
            );
        }
    }

    // 2. The guest memory: another mapping of the memfd, registered for minor faults.
    let guest = Arc::new(Mapping::new(&fd, len, pmd).unwrap_or_else(|e| fail(4, "mmap", e)));
    let uffd = UffdBuilder::new()
        .close_on_exec(true)
        .non_blocking(true)
        .user_mode_only(true)
        .create()
        .unwrap_or_else(|e| fail(4, "userfaultfd", e));
    uffd.register_with_mode(guest.addr.cast(), len, RegisterMode::MINOR)
        .unwrap_or_else(|e| fail(4, "UFFDIO_REGISTER minor", e));
    let uffd = Arc::new(uffd);

    // 3. One handler thread.
    let mut pipe = [0; 2];
    // SAFETY: `pipe` has room for two descriptors.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        fail(4, "pipe2", io::Error::last_os_error());
    }
    // SAFETY: The two new descriptors are ours.
    let (stop_rd, stop_wr) =
        unsafe { (OwnedFd::from_raw_fd(pipe[0]), OwnedFd::from_raw_fd(pipe[1])) };
    let unit = if args.thp { pmd } else { page };
    let h = {
        let uffd = Arc::clone(&uffd);
        thread::spawn(move || handler(&uffd, &stop_rd, unit, page))
    };

    // 4. The vCPUs: every page once, in a random order, split between the threads.
    let order = Arc::new(permutation(npages, args.seed));
    let wrong = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(args.threads + 1));
    let vcpus: Vec<_> = (0..args.threads)
        .map(|t| {
            let (guest, order, wrong, start) = (
                Arc::clone(&guest),
                Arc::clone(&order),
                Arc::clone(&wrong),
                Arc::clone(&start),
            );
            let threads = args.threads;
            thread::spawn(move || {
                start.wait();
                let mut bad = 0;
                for &idx in order.iter().skip(t).step_by(threads) {
                    let idx = idx as usize;
                    // SAFETY: The page is inside the guest mapping.
                    if unsafe { ptr::read_volatile(guest.page(idx, page).cast::<u64>()) }
                        != page_word(idx)
                    {
                        bad += 1;
                    }
                }
                wrong.fetch_add(bad, Ordering::Relaxed);
            })
        })
        .collect();
    start.wait();
    let t0 = now_ns();
    for v in vcpus {
        v.join()
            .unwrap_or_else(|_| fail(1, "vCPU thread", "panicked"));
    }
    let ns = now_ns() - t0;

    // SAFETY: `stop_wr` is our pipe's write end; one byte ends the handler.
    unsafe { libc::write(stop_wr.as_raw_fd(), b"x".as_ptr().cast(), 1) };
    let (faults, failures) = h.join().unwrap_or_else(|_| fail(1, "handler", "panicked"));
    let wrong = wrong.load(Ordering::Relaxed);
    let mem = if args.thp { "thp" } else { "shmem4k" };
    let pmd_kb = smaps_kb(guest.addr, "ShmemPmdMapped").unwrap_or(0);
    let mut out = io::stdout().lock();
    let _ = writeln!(
        out,
        "bench impl={imp} test=restore mem={mem} pages={npages} threads={} faults={faults} \
         pmd_mapped_kb={pmd_kb} ns={ns} ns_per_page={:.1} pages_per_sec={:.0}",
        args.threads,
        ns as f64 / npages as f64,
        npages as f64 * 1e9 / ns.max(1) as f64,
    );
    if wrong != 0 || failures != 0 {
        let _ = writeln!(
            out,
            "# {wrong} pages read wrong, {failures} failures in the handler"
        );
        exit(1);
    }
}
