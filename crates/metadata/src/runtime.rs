//! The async runtime openraft runs on: tokio, with a random source tests can seed.
//!
//! openraft draws each election timeout from its runtime's thread-local generator. With tokio's
//! own runtime that is `rand::thread_rng()`, which no test can control, so a seeded simulation
//! would still elect differently on every run. [`RafkaRuntime`] is tokio in every other respect;
//! its generator is a per-thread [`SplitMix64`] seeded from the OS unless
//! [`seed_thread_rng`] set a seed for the current thread. A simulation that runs every node on
//! one current-thread runtime with paused time and seeds the thread therefore replays exactly.

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use openraft::{AsyncRuntime, OptionalSend, TokioInstant, TokioRuntime};

use crate::placement::SplitMix64;

thread_local! {
    static RNG: RefCell<Option<SplitMix64>> = const { RefCell::new(None) };
}

/// Makes every random draw openraft makes on this thread follow `seed` from now on.
pub fn seed_thread_rng(seed: u64) {
    RNG.with(|r| *r.borrow_mut() = Some(SplitMix64::new(seed)));
}

fn next_u64() -> u64 {
    RNG.with(|r| {
        r.borrow_mut()
            .get_or_insert_with(|| SplitMix64::new(rand::random()))
            .next_u64()
    })
}

/// Handle to this thread's generator (openraft's `ThreadLocalRng`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadRng;

impl rand::RngCore for ThreadRng {
    fn next_u32(&mut self) -> u32 {
        (next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        next_u64()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// tokio, with [`ThreadRng`] as the random source.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RafkaRuntime;

impl AsyncRuntime for RafkaRuntime {
    type JoinError = <TokioRuntime as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <TokioRuntime as AsyncRuntime>::Sleep;
    type Instant = TokioInstant;
    type TimeoutError = <TokioRuntime as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> =
        <TokioRuntime as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = ThreadRng;
    type OneshotSender<T: OptionalSend> = <TokioRuntime as AsyncRuntime>::OneshotSender<T>;
    type OneshotReceiverError = <TokioRuntime as AsyncRuntime>::OneshotReceiverError;
    type OneshotReceiver<T: OptionalSend> = <TokioRuntime as AsyncRuntime>::OneshotReceiver<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        TokioRuntime::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        TokioRuntime::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        TokioRuntime::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        TokioRuntime::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        ThreadRng
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        TokioRuntime::oneshot()
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    #[test]
    fn seeded_draws_repeat() {
        let draw = || {
            let mut r = RafkaRuntime::thread_rng();
            (0..5)
                .map(|_| r.gen_range(1000..2000))
                .collect::<Vec<u64>>()
        };
        seed_thread_rng(11);
        let a = draw();
        seed_thread_rng(11);
        assert_eq!(a, draw());
        seed_thread_rng(12);
        assert_ne!(a, draw());
    }
}
