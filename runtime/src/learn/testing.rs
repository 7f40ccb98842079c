//! Helpers of the learn tests.

use burn::tensor::Tensor;

/// A tensor's values, f32.
pub(crate) fn vecf<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// Asserts `a` ≈ `b` elementwise (relative 1e-4), naming `what` and the index.
pub(crate) fn close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-4 * (1.0 + x.abs().max(y.abs())),
            "{what}[{i}]: {x} vs {y}"
        );
    }
}

/// Held by tests whose results depend on the device's seeded random numbers (initial weights,
/// dropout): Burn's generator is per device, so concurrent tests would interleave its draws.
pub(crate) fn seeded() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
