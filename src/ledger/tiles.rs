//! The Merkle tree as C2SP tlog-tiles: a tile at level `L` and index `N`
//! holds 256 consecutive hashes of level `L` of the tree of tiles, where
//! level 0 hashes are the leaf hashes (`SHA-256(0x00 || event hash)`) and
//! each level `L + 1` hash is the root of one full tile of level `L`.
//!
//! Full tiles never change, so storage keeps only those; the right edge (the
//! entries of each level's partial tile, fewer than 256 per level) is
//! [`TileEdge`], small enough to keep in memory and rebuilt from a bounded
//! number of stored tiles and events. A proof then reads at most two tiles
//! per level, O(log n), and nothing at start grows with the ledger.

use std::sync::Arc;

use super::encoding::Hash;
use super::merkle::{leaf_hash, node_hash, SubtreeSource};

/// log2 of the hashes in a tile (C2SP tlog-tiles: 8).
pub const TILE_HEIGHT: u32 = 8;
/// Hashes in a full tile.
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;

/// A full tile: 256 hashes of one level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tile {
    pub level: u32,
    pub index: u64,
    pub hashes: Vec<Hash>,
}

impl Tile {
    /// The tile's hashes as stored: 32 bytes each, concatenated (the C2SP
    /// tile body).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.hashes.concat()
    }

    /// A stored tile body; `None` unless it is exactly 256 hashes.
    pub fn from_bytes(level: u32, index: u64, bytes: &[u8]) -> Option<Self> {
        if bytes.len() as u64 != TILE_WIDTH * 32 {
            return None;
        }
        let hashes = bytes.chunks_exact(32).map(|c| Hash::try_from(c).unwrap_or_default()).collect();
        Some(Self { level, index, hashes })
    }

    /// The root of the subtree the tile's hashes span (its level + 1 entry).
    pub fn root(&self) -> Hash {
        root_of(&self.hashes)
    }
}

/// Leaves spanned by one hash of `level`.
fn span(level: u32) -> u64 {
    1 << (TILE_HEIGHT * level)
}

/// Full tiles of `level` in a tree of `size` leaves.
pub fn full_tiles(level: u32, size: u64) -> u64 {
    size.checked_shr(TILE_HEIGHT * (level + 1)).unwrap_or(0)
}

/// The root over a power-of-two number of hashes.
fn root_of(hashes: &[Hash]) -> Hash {
    let mut level = hashes.to_vec();
    while level.len() > 1 {
        level = level.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
    }
    level[0]
}

/// The right edge of the tree of tiles: per level, the hashes after its last
/// full tile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TileEdge {
    levels: Vec<Vec<Hash>>,
    size: u64,
}

impl TileEdge {
    /// The edge of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Leaves covered.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The edge of a tree whose leaves up to a tile boundary are in full
    /// tiles: `partial[L]` are the roots of the full level-`L` tiles after
    /// the last full level-`L + 1` tile, lowest level first (level 0's
    /// partial tile is empty at a tile boundary). `None` when they do not
    /// describe such a tree.
    pub fn from_full_tiles(size: u64, partial: Vec<Vec<Hash>>) -> Option<Self> {
        if !size.is_multiple_of(TILE_WIDTH) {
            return None;
        }
        let mut levels = vec![Vec::new()];
        levels.extend(partial);
        while levels.len() > 1 && levels.last().is_some_and(Vec::is_empty) {
            levels.pop();
        }
        let edge = Self { levels, size };
        let consistent = edge
            .levels
            .iter()
            .enumerate()
            .all(|(level, hashes)| hashes.len() as u64 == (size / span(level as u32)) % TILE_WIDTH);
        // The top level has no full tile, else a level above it is missing.
        (consistent && size / span(edge.levels.len() as u32 - 1) < TILE_WIDTH).then_some(edge)
    }

    /// The full tiles of `level` whose roots form `partial[level]` in
    /// [`TileEdge::from_full_tiles`] at `size`: their first index and count.
    pub fn partial_sources(level: u32, size: u64) -> (u64, u64) {
        let first = full_tiles(level + 1, size) * TILE_WIDTH;
        (first, full_tiles(level, size) - first)
    }

    /// Appends the next leaf (an event hash); returns the tiles it filled,
    /// lowest level first.
    pub fn push(&mut self, event_hash: &Hash) -> Vec<Tile> {
        let mut filled = Vec::new();
        let mut hash = leaf_hash(event_hash);
        let mut level = 0;
        self.size += 1;
        loop {
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(hash);
            if self.levels[level].len() as u64 != TILE_WIDTH {
                break;
            }
            let hashes = std::mem::take(&mut self.levels[level]);
            let tile = Tile { level: level as u32, index: full_tiles(level as u32, self.size) - 1, hashes };
            hash = tile.root();
            filled.push(tile);
            level += 1;
        }
        filled
    }

    /// The edge's hashes `[offset, offset + count)` of `level`'s partial tile.
    fn hashes(&self, level: u32, offset: u64, count: u64) -> Option<&[Hash]> {
        let partial = self.levels.get(level as usize)?;
        partial.get(offset as usize..(offset + count) as usize)
    }
}

/// A full tile with every complete subtree over its hashes (255 node
/// hashes): a proof then hashes each tile it reads once, and a tile kept
/// across proofs is never hashed again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileTree {
    pub level: u32,
    pub index: u64,
    /// `nodes[k][i]`: the root of hashes `[i * 2^k, (i + 1) * 2^k)`.
    nodes: Vec<Vec<Hash>>,
}

impl TileTree {
    /// Hashes the tile's subtrees.
    pub fn new(tile: Tile) -> Self {
        let mut nodes = vec![tile.hashes];
        while nodes[nodes.len() - 1].len() > 1 {
            let below = &nodes[nodes.len() - 1];
            let next = below.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
            nodes.push(next);
        }
        Self { level: tile.level, index: tile.index, nodes }
    }

    /// The root of the aligned run of `count` (a power of two) hashes at `offset`.
    fn subtree(&self, offset: u64, count: u64) -> Hash {
        let k = count.trailing_zeros() as usize;
        self.nodes[k][(offset >> k) as usize]
    }
}

/// A [`SubtreeSource`] over stored full tiles and a [`TileEdge`]: each
/// complete subtree is a node of one tile's tree (read through
/// `read_tile(level, index)` once per source) or the root of at most 128
/// hashes of the edge.
pub struct TileSource<'a, F> {
    edge: &'a TileEdge,
    read_tile: F,
    read: Vec<Arc<TileTree>>,
}

/// Why a subtree could not be given.
#[derive(Debug, thiserror::Error)]
pub enum TileError<E> {
    #[error(transparent)]
    Read(E),
    #[error("tile {level}/{index} is missing or damaged")]
    Missing { level: u32, index: u64 },
    #[error("leaves [{start}, {end}) are not in a tree of {size}")]
    OutOfRange { start: u64, end: u64, size: u64 },
}

impl<'a, E, F: FnMut(u32, u64) -> Result<Option<Arc<TileTree>>, E>> TileSource<'a, F> {
    /// A source for proofs over the tree `edge` ends.
    pub fn new(edge: &'a TileEdge, read_tile: F) -> Self {
        Self { edge, read_tile, read: Vec::new() }
    }

    /// Tiles read so far (each at most once per source).
    pub fn tiles_read(&self) -> usize {
        self.read.len()
    }

    fn tile(&mut self, level: u32, index: u64) -> Result<&TileTree, TileError<E>> {
        if let Some(pos) = self.read.iter().position(|t| t.level == level && t.index == index) {
            return Ok(&self.read[pos]);
        }
        let tile = (self.read_tile)(level, index)
            .map_err(TileError::Read)?
            .filter(|t| t.level == level && t.index == index)
            .ok_or(TileError::Missing { level, index })?;
        self.read.push(tile);
        Ok(&self.read[self.read.len() - 1])
    }
}

impl<E, F: FnMut(u32, u64) -> Result<Option<Arc<TileTree>>, E>> SubtreeSource for TileSource<'_, F> {
    type Error = TileError<E>;

    fn subtree(&mut self, start: u64, size: u64) -> Result<Hash, TileError<E>> {
        let size_log = size.trailing_zeros();
        if start + size > self.edge.size {
            return Err(TileError::OutOfRange { start, end: start + size, size: self.edge.size });
        }
        let level = size_log / TILE_HEIGHT;
        let count = 1u64 << (size_log % TILE_HEIGHT);
        let first = start >> (TILE_HEIGHT * level);
        let (index, offset) = (first / TILE_WIDTH, first % TILE_WIDTH);
        if index < full_tiles(level, self.edge.size) {
            return Ok(self.tile(level, index)?.subtree(offset, count));
        }
        let hashes = self.edge.hashes(level, offset, count).ok_or(TileError::Missing { level, index })?;
        Ok(root_of(hashes))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::convert::Infallible;

    use super::*;
    use crate::ledger::merkle;

    /// The reference: RFC 9162's recursion over every leaf.
    struct Leaves<'a>(&'a [Hash]);

    impl SubtreeSource for Leaves<'_> {
        type Error = Infallible;
        fn subtree(&mut self, start: u64, size: u64) -> Result<Hash, Infallible> {
            let leaves: Vec<Hash> =
                self.0[start as usize..(start + size) as usize].iter().map(|h| leaf_hash(h)).collect();
            Ok(root_of(&leaves))
        }
    }

    fn event_hashes(n: u64) -> Vec<Hash> {
        (0..n)
            .map(|i| ring::digest::digest(&ring::digest::SHA256, &i.to_be_bytes()).as_ref().try_into().unwrap())
            .collect()
    }

    /// Tiles as storage keeps them, and the edge after every leaf.
    fn grow(hashes: &[Hash]) -> (HashMap<(u32, u64), Tile>, TileEdge) {
        let mut stored = HashMap::new();
        let mut edge = TileEdge::new();
        for h in hashes {
            for tile in edge.push(h) {
                assert!(stored.insert((tile.level, tile.index), tile).is_none(), "a tile is filled twice");
            }
        }
        (stored, edge)
    }

    /// Compares root, inclusion and consistency proofs at size `n` with
    /// `reference`; each inclusion proof reads at most two tiles a level.
    fn check_size<R: SubtreeSource<Error = Infallible>>(
        stored: &HashMap<(u32, u64), Tile>,
        edge: &TileEdge,
        reference: &mut R,
        probes: &[u64],
    ) {
        let n = edge.size();
        let read = |level: u32, index: u64| {
            Ok::<_, Infallible>(stored.get(&(level, index)).cloned().map(|t| Arc::new(TileTree::new(t))))
        };
        let root = merkle::root(&mut TileSource::new(edge, read), n).unwrap();
        assert_eq!(root, merkle::root(reference, n).unwrap(), "root of {n}");
        let levels = (0..4).filter(|&l| full_tiles(l, n) > 0).count().max(1);
        for &m in probes.iter().filter(|&&m| m < n) {
            let mut tiles = TileSource::new(edge, read);
            assert_eq!(
                merkle::inclusion_proof(&mut tiles, m, n).unwrap(),
                merkle::inclusion_proof(reference, m, n).unwrap(),
                "inclusion of {m} in {n}"
            );
            assert!(tiles.tiles_read() <= 2 * levels, "{} tiles read for {m} in {n}", tiles.tiles_read());
            assert_eq!(
                merkle::consistency_proof(&mut TileSource::new(edge, read), m + 1, n).unwrap(),
                merkle::consistency_proof(reference, m + 1, n).unwrap(),
                "consistency {} -> {n}",
                m + 1
            );
        }
    }

    #[test]
    fn tile_proofs_equal_the_reference_for_every_size_up_to_2000() {
        let leaves = event_hashes(2000);
        let index = merkle::MerkleIndex::from_event_hashes(&leaves, 1);
        let read_leaves =
            |first: u64, count: u64| Ok::<_, Infallible>(leaves[first as usize..][..count as usize].to_vec());
        let mut reference = merkle::IndexSource::new(&index, read_leaves);
        let mut stored = HashMap::new();
        let mut edge = TileEdge::new();
        for n in 1..=2000u64 {
            for tile in edge.push(&leaves[n as usize - 1]) {
                stored.insert((tile.level, tile.index), tile);
            }
            let probes = [0, n / 3, n / 2, n.saturating_sub(257), n - 1];
            check_size(&stored, &edge, &mut reference, &probes);
            // And the root as RFC 9162 defines it, from every leaf.
            let read = |level: u32, index: u64| {
                Ok::<_, Infallible>(stored.get(&(level, index)).cloned().map(|t| Arc::new(TileTree::new(t))))
            };
            assert_eq!(
                merkle::root(&mut TileSource::new(&edge, read), n).unwrap(),
                merkle::root(&mut Leaves(&leaves[..n as usize]), n).unwrap()
            );
        }
    }

    /// Today's in-memory index (complete subtrees of 16 leaves and up) as the
    /// reference where hashing every leaf per proof would take too long.
    #[test]
    fn tile_proofs_equal_the_in_memory_index_for_random_sizes_up_to_a_million() {
        let leaves = event_hashes(1_000_000);
        let index = merkle::MerkleIndex::from_event_hashes(&leaves, 2);
        let read_leaves =
            |first: u64, count: u64| Ok::<_, Infallible>(leaves[first as usize..][..count as usize].to_vec());
        let mut reference = merkle::IndexSource::new(&index, read_leaves);
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |bound: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % bound
        };
        let mut sizes: Vec<u64> = (0..12).map(|_| 1 + next(1_000_000)).collect();
        sizes.extend([65_535, 65_536, 65_537, 1_000_000]);
        sizes.sort_unstable();
        let (mut stored, mut edge) = (HashMap::new(), TileEdge::new());
        for n in sizes {
            while edge.size() < n {
                for tile in edge.push(&leaves[edge.size() as usize]) {
                    stored.insert((tile.level, tile.index), tile);
                }
            }
            let probes: Vec<u64> = (0..6).map(|_| next(n)).chain([0, n - 1]).collect();
            check_size(&stored, &edge, &mut reference, &probes);
        }
    }

    #[test]
    fn an_edge_rebuilt_from_full_tiles_continues_as_the_grown_one() {
        let leaves = event_hashes(70_000);
        let (stored, grown) = grow(&leaves[..66_048]);
        let size = 66_048;
        let partial: Vec<Vec<Hash>> = (0..2)
            .map(|level| {
                let (first, count) = TileEdge::partial_sources(level, size);
                (first..first + count).map(|i| stored[&(level, i)].root()).collect()
            })
            .collect();
        let mut rebuilt = TileEdge::from_full_tiles(size, partial).expect("a consistent edge");
        assert_eq!(rebuilt, grown);
        let mut grown = grown;
        for h in &leaves[66_048..] {
            assert_eq!(rebuilt.push(h), grown.push(h));
        }
        assert!(TileEdge::from_full_tiles(size + 1, vec![]).is_none(), "not at a tile boundary");
        assert!(TileEdge::from_full_tiles(size, vec![vec![]]).is_none(), "a level's hashes are missing");
    }

    #[test]
    fn a_tile_body_is_256_hashes() {
        let tile = Tile { level: 1, index: 7, hashes: event_hashes(256) };
        assert_eq!(Tile::from_bytes(1, 7, &tile.to_bytes()), Some(tile.clone()));
        assert_eq!(Tile::from_bytes(1, 7, &tile.to_bytes()[..32 * 255]), None);
    }
}
