//! A small seeded random generator (xorshift64*) for the chaos and fuzz tests: the same seed
//! gives the same choices, so a failure can be repeated.

#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// `seed` from the environment variable `var` if set (to repeat a failure), else `default`.
    pub fn seeded(var: &str, default: u64) -> (Self, u64) {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default);
        (Self(seed | 1), seed)
    }

    /// A generator from `seed` itself.
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}
