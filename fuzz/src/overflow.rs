//! Stack overflows as crashes libFuzzer can record.
//!
//! libFuzzer's `main` replaces Rust's, so Rust's own stack-overflow report never gets
//! installed, and libFuzzer's SIGSEGV handler runs on the very stack that overflowed and
//! dies silently, leaving no crash file. Instead, every thread that runs broker or parser
//! code gets an alternate signal stack, and SIGSEGV/SIGBUS go to a handler on that stack
//! that says what happened and has libFuzzer's thread abort (SIGABRT), whose handler then
//! saves the input. Not on the faulting thread: it may have overflowed inside malloc,
//! holding the lock that the crash report needs.
//! Run with `-handle_segv=0 -handle_bus=0` (fuzz/run.sh does) so that libFuzzer leaves
//! these two signals to us.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

const ALT_STACK: usize = 64 << 10;

static INSTALL: Once = Once::new();
/// libFuzzer's thread (pthread_t), set by `remember_fuzzer_thread`; 0 until then.
static FUZZER_THREAD: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static ALT: RefCell<Option<AltStack>> = const { RefCell::new(None) };
}

/// This thread's alternate signal stack, freed (after being switched off) at thread exit.
struct AltStack {
    _memory: Vec<u8>,
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let off = libc::stack_t {
            ss_sp: std::ptr::null_mut(),
            ss_flags: libc::SS_DISABLE,
            ss_size: 0,
        };
        // SAFETY: switching this thread's alternate stack off before its memory is freed;
        // the kernel reads `off` during the call only.
        unsafe { libc::sigaltstack(&off, std::ptr::null_mut()) };
    }
}

extern "C" fn on_fault(_signal: libc::c_int) {
    const MSG: &[u8] = b"\n==warren-fuzz== SIGSEGV/SIGBUS: stack overflow (or bad access); aborting\n";
    let fuzzer = FUZZER_THREAD.load(Ordering::Relaxed) as libc::pthread_t;
    // SAFETY: write, pthread_self, pthread_kill, pause and abort are async-signal-safe;
    // MSG is a static buffer; `fuzzer` is a live thread (libFuzzer's, which never exits).
    unsafe {
        libc::write(2, MSG.as_ptr().cast(), MSG.len());
        if fuzzer != 0 && libc::pthread_self() != fuzzer {
            libc::pthread_kill(fuzzer, libc::SIGABRT);
            loop {
                libc::pause();
            }
        }
        libc::abort();
    }
}

/// Records the calling thread as libFuzzer's: call it from the fuzz target's thread.
pub fn remember_fuzzer_thread() {
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() } as u64;
    FUZZER_THREAD.store(me, Ordering::Relaxed);
}

/// Installs the fault handler (once per process) and gives the calling thread an
/// alternate stack (once per thread). Call at the start of every thread that runs
/// client-driven code.
pub fn guard_this_thread() {
    INSTALL.call_once(|| {
        for signal in [libc::SIGSEGV, libc::SIGBUS] {
            // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the
            // handler only calls async-signal-safe functions.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_fault as extern "C" fn(libc::c_int) as usize;
                action.sa_flags = libc::SA_ONSTACK;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, std::ptr::null_mut());
            }
        }
    });
    ALT.with(|alt| {
        let mut alt = alt.borrow_mut();
        if alt.is_some() {
            return;
        }
        let mut memory = vec![0u8; ALT_STACK];
        let stack = libc::stack_t {
            ss_sp: memory.as_mut_ptr().cast(),
            ss_flags: 0,
            ss_size: memory.len(),
        };
        // SAFETY: `memory` lives in this thread's AltStack until the thread exits, and
        // AltStack's drop switches the alternate stack off before freeing it.
        unsafe { libc::sigaltstack(&stack, std::ptr::null_mut()) };
        *alt = Some(AltStack { _memory: memory });
    });
}
