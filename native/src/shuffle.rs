//! Secret random orders: Fisher-Yates (rand's `SliceRandom::shuffle`) driven by a ChaCha12
//! CSPRNG (`StdRng`) seeded from the OS (`SysRng`, getrandom) for every shuffle.

use rand::rngs::{StdRng, SysRng};
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// The OS refused to provide randomness; nothing is shuffled with a weaker source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoEntropy;

fn fresh_rng() -> Result<StdRng, NoEntropy> {
    StdRng::try_from_rng(&mut SysRng).map_err(|_| NoEntropy)
}

/// A uniformly random permutation of 0..n.
pub fn permutation(n: usize) -> Result<Vec<u64>, NoEntropy> {
    let mut order: Vec<u64> = (0..n as u64).collect();
    order.shuffle(&mut fresh_rng()?);
    Ok(order)
}

/// The `size`-byte items of `packed` in a uniformly random order (`packed.len()` a multiple
/// of `size`, `size` > 0: the caller checks).
pub fn shuffle_packed(packed: &[u8], size: usize) -> Result<Vec<u8>, NoEntropy> {
    let items: Vec<&[u8]> = packed.chunks_exact(size).collect();
    let order = permutation(items.len())?;
    let mut out = Vec::with_capacity(packed.len());
    for i in order {
        out.extend_from_slice(items[i as usize]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permutation_holds_every_index_once() {
        let mut order = permutation(1000).unwrap();
        assert_ne!(order, (0..1000).collect::<Vec<u64>>());
        order.sort_unstable();
        assert_eq!(order, (0..1000).collect::<Vec<u64>>());
    }

    #[test]
    fn shuffled_items_stay_whole() {
        let packed: Vec<u8> = (0..200u8).flat_map(|i| [i, i, i]).collect();
        let out = shuffle_packed(&packed, 3).unwrap();
        let mut items: Vec<&[u8]> = out.chunks_exact(3).collect();
        assert!(items.iter().all(|c| c[0] == c[1] && c[1] == c[2]));
        items.sort_unstable();
        assert_eq!(items.concat(), packed);
    }
}
