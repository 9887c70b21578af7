//! Where each token's bytes end, in about half the memory of a `Vec<u32>`.

use alloc::vec::Vec;

/// Entries per base value.
const GROUP: usize = 64;

/// Non-decreasing `u32`s: a `u32` base every `GROUP` entries and each entry's `u16` distance from
/// it (2.06 bytes an entry instead of 4), or plain `u32`s when some group spans 64 KiB or more.
pub(crate) enum Offsets {
    Packed { base: Vec<u32>, delta: Vec<u16> },
    Wide(Vec<u32>),
}

impl Offsets {
    /// Packs `v` (non-decreasing) when every group fits.
    pub(crate) fn new(v: Vec<u32>) -> Offsets {
        let fits = v.chunks(GROUP).all(|c| {
            let (first, last) = (c[0], c[c.len() - 1]);
            first <= last && last - first <= u32::from(u16::MAX)
        });
        if !fits {
            return Offsets::Wide(v);
        }
        let base = v.chunks(GROUP).map(|c| c[0]).collect();
        let mut delta = Vec::with_capacity(v.len());
        for c in v.chunks(GROUP) {
            delta.extend(c.iter().map(|&x| (x - c[0]) as u16));
        }
        Offsets::Packed { base, delta }
    }

    /// Entry `i`, if in range.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<u32> {
        match self {
            Offsets::Packed { base, delta } => {
                Some(base.get(i / GROUP)? + u32::from(*delta.get(i)?))
            }
            Offsets::Wide(v) => v.get(i).copied(),
        }
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        match self {
            Offsets::Packed { delta, .. } => delta.len(),
            Offsets::Wide(v) => v.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_and_wide_give_the_values_back() {
        let v: Vec<u32> = (0..1000u32).map(|i| i * 7 + i / 3).collect();
        let o = Offsets::new(v.clone());
        assert!(matches!(o, Offsets::Packed { .. }));
        assert_eq!(o.len(), v.len());
        assert!(v.iter().enumerate().all(|(i, &x)| o.get(i) == Some(x)));
        assert_eq!(o.get(1000), None);

        // A group spanning 64 KiB stays wide.
        let v = alloc::vec![0, 10, 70_000, 70_001];
        let o = Offsets::new(v.clone());
        assert!(matches!(o, Offsets::Wide(_)));
        assert!(v.iter().enumerate().all(|(i, &x)| o.get(i) == Some(x)));
        assert!(matches!(Offsets::new(Vec::new()), Offsets::Packed { .. }));
    }
}
