//! The RFC 9162 (Certificate Transparency v2) Merkle tree over event hashes:
//! tree heads, inclusion and consistency proofs, and their verification.
//!
//! The leaves are the 32-byte event hashes in seq order (leaf index =
//! seq - 1). Proof generation asks a [`SubtreeSource`] for the hashes of
//! complete, aligned subtrees, so a caller that keeps those answers in
//! O(log n) without rebuilding the tree: the server reads them from stored
//! tiles (`tiles`); [`MerkleIndex`] keeps them in memory, the reference the
//! tiles are tested against.

use ring::digest;

use super::encoding::Hash;

/// `SHA-256(0x00 || leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&[0x00]);
    ctx.update(leaf);
    to_hash(ctx.finish())
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&[0x01]);
    ctx.update(left);
    ctx.update(right);
    to_hash(ctx.finish())
}

/// The root of the empty tree: `SHA-256()` of nothing.
pub fn empty_root() -> Hash {
    to_hash(digest::digest(&digest::SHA256, b""))
}

fn to_hash(d: digest::Digest) -> Hash {
    let mut h = [0u8; 32];
    h.copy_from_slice(d.as_ref());
    h
}

/// The largest power of two strictly less than `n` (n >= 2).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Supplies hashes of complete subtrees `[start, start + size)` where `size`
/// is a power of two and `start` a multiple of it.
pub trait SubtreeSource {
    type Error;
    fn subtree(&mut self, start: u64, size: u64) -> Result<Hash, Self::Error>;
}

/// MTH of the leaves `[start, start + n)`, following RFC 9162's recursion.
pub fn subtree_root<S: SubtreeSource>(src: &mut S, start: u64, n: u64) -> Result<Hash, S::Error> {
    if n.is_power_of_two() && start.is_multiple_of(n) {
        return src.subtree(start, n);
    }
    let k = split(n);
    let left = subtree_root(src, start, k)?;
    let right = subtree_root(src, start + k, n - k)?;
    Ok(node_hash(&left, &right))
}

/// The tree head of the first `n` leaves.
pub fn root<S: SubtreeSource>(src: &mut S, n: u64) -> Result<Hash, S::Error> {
    if n == 0 {
        return Ok(empty_root());
    }
    subtree_root(src, 0, n)
}

/// The audit path PATH(m, D[n]) for leaf index `m` (RFC 9162 §2.1.3.1),
/// leaf-most sibling first.
pub fn inclusion_proof<S: SubtreeSource>(src: &mut S, m: u64, n: u64) -> Result<Vec<Hash>, S::Error> {
    debug_assert!(m < n);
    let mut path = Vec::new();
    inclusion_rec(src, m, 0, n, &mut path)?;
    Ok(path)
}

fn inclusion_rec<S: SubtreeSource>(
    src: &mut S,
    m: u64,
    start: u64,
    n: u64,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        inclusion_rec(src, m, start, k, out)?;
        out.push(subtree_root(src, start + k, n - k)?);
    } else {
        inclusion_rec(src, m - k, start + k, n - k, out)?;
        out.push(subtree_root(src, start, k)?);
    }
    Ok(())
}

/// The consistency proof PROOF(m, D[n]) between tree sizes `m` and `n`
/// (RFC 9162 §2.1.4.1), for 0 < m <= n.
pub fn consistency_proof<S: SubtreeSource>(src: &mut S, m: u64, n: u64) -> Result<Vec<Hash>, S::Error> {
    debug_assert!(0 < m && m <= n);
    let mut proof = Vec::new();
    subproof(src, m, 0, n, true, &mut proof)?;
    Ok(proof)
}

fn subproof<S: SubtreeSource>(
    src: &mut S,
    m: u64,
    start: u64,
    n: u64,
    complete: bool,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    if m == n {
        if !complete {
            out.push(subtree_root(src, start, n)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(src, m, start, k, complete, out)?;
        out.push(subtree_root(src, start + k, n - k)?);
    } else {
        subproof(src, m - k, start + k, n - k, false, out)?;
        out.push(subtree_root(src, start, k)?);
    }
    Ok(())
}

/// Checks an inclusion proof (RFC 9162 §2.1.3.2): `leaf` (the leaf hash) at
/// `index` is in the tree of `size` leaves with head `root`.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, path: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// Checks a consistency proof (RFC 9162 §2.1.4.2): the tree of `size2`
/// leaves with head `root2` extends the tree of `size1` leaves with head
/// `root1`.
pub fn verify_consistency(size1: u64, size2: u64, root1: &Hash, root2: &Hash, proof: &[Hash]) -> bool {
    if size1 > size2 {
        return false;
    }
    if size1 == size2 {
        return proof.is_empty() && root1 == root2;
    }
    if size1 == 0 {
        // Every tree extends the empty tree; RFC 9162 defines no proof for it.
        return proof.is_empty();
    }
    let mut path: Vec<Hash> = proof.to_vec();
    if size1.is_power_of_two() {
        path.insert(0, *root1);
    }
    let Some((first, rest)) = path.split_first() else { return false };
    let (mut fnode, mut snode) = (size1 - 1, size2 - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && fr == *root1 && sr == *root2
}

/// Subtrees of `2^TILE_HEIGHT` leaves and larger are kept in memory; smaller
/// ones are recomputed from at most that many leaves read from storage.
pub const TILE_HEIGHT: u32 = 4;
/// Leaves per tile.
pub const TILE_SIZE: u64 = 1 << TILE_HEIGHT;

/// The complete subtree hashes of height >= [`TILE_HEIGHT`], built
/// incrementally from leaves in order. About n/8 hashes for n leaves
/// (4 MB per million events), so any proof needs only O(log n) memory
/// lookups plus at most two reads of one tile's leaves. The server no longer
/// keeps one (its memory grew with the ledger); it is the in-memory
/// reference for the stored tiles.
#[derive(Debug, Default, Clone)]
pub struct MerkleIndex {
    /// `levels[h][i]`: the root of leaves `[i * 2^(h+TILE_HEIGHT), (i+1) * 2^(h+TILE_HEIGHT))`.
    levels: Vec<Vec<Hash>>,
    /// Leaf hashes of the incomplete last tile.
    pending: Vec<Hash>,
    size: u64,
}

impl MerkleIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Leaves covered.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// An index over `event_hashes`, hashing the tiles on `threads` threads.
    pub fn from_event_hashes(event_hashes: &[Hash], threads: usize) -> Self {
        let full_tiles = event_hashes.len() / TILE_SIZE as usize;
        let per_thread = full_tiles.div_ceil(threads.max(1)).max(1);
        let tile_roots: Vec<Hash> = std::thread::scope(|scope| {
            let workers: Vec<_> = event_hashes[..full_tiles * TILE_SIZE as usize]
                .chunks(per_thread * TILE_SIZE as usize)
                .map(|chunk| scope.spawn(move || chunk.chunks(TILE_SIZE as usize).map(tile_root).collect::<Vec<_>>()))
                .collect();
            workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
        });
        Self::from_tile_roots(&tile_roots, &event_hashes[full_tiles * TILE_SIZE as usize..])
    }

    /// An index from the roots of its complete tiles, in order ([`tile_root`]
    /// of each run of [`TILE_SIZE`] event hashes), and the event hashes after
    /// the last complete tile (fewer than [`TILE_SIZE`]).
    pub fn from_tile_roots(tile_roots: &[Hash], tail: &[Hash]) -> Self {
        let mut index = Self::new();
        for root in tile_roots {
            index.add_complete(0, *root);
        }
        index.size = tile_roots.len() as u64 * TILE_SIZE;
        for hash in tail {
            index.push(hash);
        }
        index
    }

    /// Appends the next leaf (an event hash).
    pub fn push(&mut self, event_hash: &Hash) {
        self.pending.push(leaf_hash(event_hash));
        self.size += 1;
        if self.pending.len() as u64 == TILE_SIZE {
            let leaves = std::mem::take(&mut self.pending);
            self.add_complete(0, root_of_leaves(leaves));
        }
    }

    fn add_complete(&mut self, height: usize, hash: Hash) {
        if self.levels.len() <= height {
            self.levels.push(Vec::new());
        }
        self.levels[height].push(hash);
        let len = self.levels[height].len();
        if len.is_multiple_of(2) {
            let parent = node_hash(&self.levels[height][len - 2], &self.levels[height][len - 1]);
            self.add_complete(height + 1, parent);
        }
    }

    /// The stored hash of a complete subtree of at least one tile, if present.
    pub fn stored(&self, start: u64, size: u64) -> Option<Hash> {
        if size < TILE_SIZE || !size.is_power_of_two() || !start.is_multiple_of(size) {
            return None;
        }
        let height = (size.trailing_zeros() - TILE_HEIGHT) as usize;
        self.levels.get(height)?.get((start / size) as usize).copied()
    }

    /// Leaf hashes of the incomplete last tile, if `[start, start+len)` lies in it.
    pub fn pending_leaves(&self, start: u64, len: u64) -> Option<&[Hash]> {
        let tile_start = self.size - self.pending.len() as u64;
        if start < tile_start || start + len > self.size {
            return None;
        }
        let from = (start - tile_start) as usize;
        Some(&self.pending[from..from + len as usize])
    }
}

/// The root of a complete tile, from its [`TILE_SIZE`] event hashes.
pub fn tile_root(event_hashes: &[Hash]) -> Hash {
    root_of_leaves(event_hashes.iter().map(|h| leaf_hash(h)).collect())
}

/// The root over a power-of-two number of leaf hashes.
fn root_of_leaves(mut level: Vec<Hash>) -> Hash {
    while level.len() > 1 {
        level = level.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
    }
    level[0]
}

/// A [`SubtreeSource`] over a [`MerkleIndex`], reading the leaves of small
/// subtrees through `read_leaves(first_index, count)` (event hashes, one tile
/// at a time, remembered for the rest of the proof).
pub struct IndexSource<'a, F> {
    index: &'a MerkleIndex,
    read_leaves: F,
    tiles: Vec<(u64, Vec<Hash>)>,
}

impl<'a, E, F: FnMut(u64, u64) -> Result<Vec<Hash>, E>> IndexSource<'a, F> {
    /// A source for proofs over `index`.
    pub fn new(index: &'a MerkleIndex, read_leaves: F) -> Self {
        Self { index, read_leaves, tiles: Vec::new() }
    }

    fn tile_leaves(&mut self, tile: u64) -> Result<&[Hash], E> {
        if let Some(pos) = self.tiles.iter().position(|(t, _)| *t == tile) {
            return Ok(&self.tiles[pos].1);
        }
        let start = tile * TILE_SIZE;
        let count = TILE_SIZE.min(self.index.size - start);
        let leaves: Vec<Hash> = match self.index.pending_leaves(start, count) {
            Some(pending) => pending.to_vec(),
            None => (self.read_leaves)(start, count)?.iter().map(|h| leaf_hash(h)).collect(),
        };
        self.tiles.push((tile, leaves));
        Ok(&self.tiles[self.tiles.len() - 1].1)
    }
}

impl<E, F: FnMut(u64, u64) -> Result<Vec<Hash>, E>> SubtreeSource for IndexSource<'_, F> {
    type Error = E;

    fn subtree(&mut self, start: u64, size: u64) -> Result<Hash, E> {
        if let Some(hash) = self.index.stored(start, size) {
            return Ok(hash);
        }
        // Below tile height (or the tile is not complete yet): hash the leaves.
        let tile = start / TILE_SIZE;
        let offset = (start - tile * TILE_SIZE) as usize;
        let leaves = self.tile_leaves(tile)?;
        Ok(root_of_leaves(leaves[offset..offset + size as usize].to_vec()))
    }
}
