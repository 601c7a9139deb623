//! The brand's matching lookup: truncated elements of one match key, sorted, with the segment
//! of each; a record's element is found by binary search. Duplicates keep the first segment
//! added, as the stable sort of the former numpy table did.

/// Longest truncated element the table takes (the protocol uses 12 bytes).
pub const MAX_SIZE: usize = 16;

fn as_key(item: &[u8]) -> u128 {
    let mut padded = [0u8; MAX_SIZE];
    padded[..item.len()].copy_from_slice(item);
    u128::from_be_bytes(padded)
}

pub struct MatchTable {
    size: usize,
    keys: Vec<u128>,
    segments: Vec<i8>,
}

impl MatchTable {
    /// `packed` holds `segments.len()` items of `size` bytes (1..=MAX_SIZE; the caller checks).
    pub fn new(packed: &[u8], segments: &[i8], size: usize) -> MatchTable {
        let mut entries: Vec<(u128, usize, i8)> = packed
            .chunks_exact(size)
            .zip(segments)
            .enumerate()
            .map(|(i, (item, &segment))| (as_key(item), i, segment))
            .collect();
        entries.sort_unstable();
        entries.dedup_by_key(|entry| entry.0);
        MatchTable {
            size,
            keys: entries.iter().map(|e| e.0).collect(),
            segments: entries.iter().map(|e| e.2).collect(),
        }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// The segment of each `size`-byte item of `values`, or -1 where it is not in the table.
    pub fn lookup_into(&self, values: &[u8], out: &mut [i8]) {
        for (item, slot) in values.chunks_exact(self.size).zip(out.iter_mut()) {
            *slot = match self.keys.binary_search(&as_key(item)) {
                Ok(i) => self.segments[i],
                Err(_) => -1,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_members_first_segment_wins() {
        let packed = b"aaabbbcccaaa";
        let table = MatchTable::new(packed, &[0, 1, 2, 3], 3);
        let mut out = [9i8; 4];
        table.lookup_into(b"aaacccdddbbb", &mut out);
        assert_eq!(out, [0, 2, -1, 1]);
    }
}
