//! The `merkle_tiles` table: the full tiles of the tree over the events
//! (`ledger::tiles`), the right edge rebuilt from them, and the resumable
//! build of the tiles of a ledger written before they were stored.

use diesel::prelude::*;

use super::schema::merkle_tiles;
use super::{events, DbConn, StoreError};
use crate::ledger::tiles::{full_tiles, Tile, TileEdge, TILE_WIDTH};
use crate::with_conn;

fn damaged(reason: String) -> StoreError {
    StoreError::DamagedTiles(reason)
}

/// Stores tiles just filled.
pub fn insert(conn: &mut DbConn, tiles: &[Tile]) -> Result<(), StoreError> {
    if tiles.is_empty() {
        return Ok(());
    }
    let rows: Vec<(i16, i64, Vec<u8>)> = tiles
        .iter()
        .map(|t| Ok((i16::try_from(t.level)?, i64::try_from(t.index)?, t.to_bytes())))
        .collect::<Result<_, std::num::TryFromIntError>>()
        .map_err(|e| damaged(format!("tile position out of range: {e}")))?;
    let values: Vec<_> = rows
        .iter()
        .map(|(level, idx, hashes)| {
            (merkle_tiles::level.eq(*level), merkle_tiles::idx.eq(*idx), merkle_tiles::hashes.eq(hashes))
        })
        .collect();
    // Bind parameters stay under both backends' limits on a large build.
    for chunk in values.chunks(1000) {
        with_conn!(conn, |c| diesel::insert_into(merkle_tiles::table).values(chunk).execute(c))?;
    }
    Ok(())
}

/// Drops every stored tile (`rebuild` stores them again from the events).
pub fn clear(conn: &mut DbConn) -> Result<(), StoreError> {
    with_conn!(conn, |c| diesel::delete(merkle_tiles::table).execute(c))?;
    Ok(())
}

/// The stored tile at `level`/`index`.
pub fn read(conn: &mut DbConn, level: u32, index: u64) -> Result<Option<Tile>, StoreError> {
    let (Ok(l), Ok(i)) = (i16::try_from(level), i64::try_from(index)) else { return Ok(None) };
    let bytes: Option<Vec<u8>> =
        with_conn!(conn, |c| merkle_tiles::table.find((l, i)).select(merkle_tiles::hashes).first(c).optional())?;
    bytes
        .map(|b| {
            Tile::from_bytes(level, index, &b).ok_or_else(|| damaged(format!("tile {level}/{index} is not 256 hashes")))
        })
        .transpose()
}

/// The stored tiles `first..first + count` of `level`, in order.
fn read_range(conn: &mut DbConn, level: u32, first: u64, count: u64) -> Result<Vec<Tile>, StoreError> {
    let l = i16::try_from(level).map_err(|e| damaged(e.to_string()))?;
    let (from, to) = (i64::try_from(first).unwrap_or(i64::MAX), i64::try_from(first + count).unwrap_or(i64::MAX));
    let rows: Vec<(i64, Vec<u8>)> = with_conn!(conn, |c| merkle_tiles::table
        .filter(merkle_tiles::level.eq(l).and(merkle_tiles::idx.ge(from)).and(merkle_tiles::idx.lt(to)))
        .order(merkle_tiles::idx.asc())
        .select((merkle_tiles::idx, merkle_tiles::hashes))
        .load(c))?;
    let tiles: Vec<Tile> = rows
        .into_iter()
        .map(|(idx, b)| {
            let index = u64::try_from(idx).map_err(|_| damaged("negative tile index".into()))?;
            Tile::from_bytes(level, index, &b).ok_or_else(|| damaged(format!("tile {level}/{index} is not 256 hashes")))
        })
        .collect::<Result<_, _>>()?;
    if tiles.iter().enumerate().any(|(i, t)| t.index != first + i as u64) || tiles.len() as u64 != count {
        return Err(damaged(format!("tiles {first}..{} of level {level} are not all there", first + count)));
    }
    Ok(tiles)
}

/// Full tiles stored per level, lowest first: each an index lookup (the
/// highest index), so it costs the same on any size of ledger.
fn counts(conn: &mut DbConn) -> Result<Vec<u64>, StoreError> {
    let mut counts = Vec::new();
    for level in 0i16.. {
        let highest: Option<i64> = with_conn!(conn, |c| merkle_tiles::table
            .filter(merkle_tiles::level.eq(level))
            .select(diesel::dsl::max(merkle_tiles::idx))
            .first(c))?;
        match highest {
            Some(h) => counts.push(u64::try_from(h).map_err(|_| damaged("negative tile index".into()))? + 1),
            None => break,
        }
    }
    Ok(counts)
}

/// The right edge of the tree the stored tiles cover (up to the last full
/// level-0 tile), from at most 255 tiles a level: what start-up reads
/// instead of every event hash.
pub fn stored_edge(conn: &mut DbConn) -> Result<TileEdge, StoreError> {
    let counts = counts(conn)?;
    let size = counts.first().copied().unwrap_or(0) * TILE_WIDTH;
    for (level, &count) in counts.iter().enumerate() {
        if count != full_tiles(level as u32, size) {
            return Err(damaged(format!(
                "{count} tiles at level {level} where {} events fill {}",
                size,
                full_tiles(level as u32, size)
            )));
        }
    }
    let mut partial = Vec::with_capacity(counts.len());
    for level in 0..counts.len() as u32 {
        let (first, count) = TileEdge::partial_sources(level, size);
        partial.push(read_range(conn, level, first, count)?.iter().map(Tile::root).collect());
    }
    TileEdge::from_full_tiles(size, partial).ok_or_else(|| damaged(format!("the tiles do not form a tree of {size}")))
}

/// Extends `edge` with the hashes of events up to `until`, streaming; the
/// tiles they fill are already stored (by the writer, with the events).
pub fn extend(conn: &mut DbConn, edge: &mut TileEdge, until: u64) -> Result<(), StoreError> {
    let mut gap = None;
    events::for_each_hash_after(conn, edge.size(), until, |seq, hash| {
        if gap.is_none() && seq != edge.size() + 1 {
            gap = Some(edge.size() + 1);
        }
        if gap.is_none() {
            edge.push(&hash);
        }
    })?;
    match gap.or((edge.size() < until).then_some(edge.size() + 1)) {
        Some(seq) => Err(StoreError::CorruptRow { seq, reason: "missing from the ledger".into() }),
        None => Ok(()),
    }
}

/// Extends `edge` to `until`, storing the tiles the events fill, a
/// [`BUILD_STEP`] of events at a time (memory stays that, however far
/// behind the tiles are).
fn extend_storing(conn: &mut DbConn, edge: &mut TileEdge, until: u64) -> Result<(), StoreError> {
    while edge.size() < until {
        let count = (until - edge.size()).min(BUILD_STEP);
        let mut filled = Vec::new();
        for hash in events::hashes(conn, edge.size() + 1, count)? {
            filled.extend(edge.push(&hash));
        }
        insert(conn, &filled)?;
    }
    Ok(())
}

/// The edge at `size` events, storing any full tile the stored ones lack
/// (call it inside the append transaction).
pub fn edge_at(conn: &mut DbConn, size: u64) -> Result<TileEdge, StoreError> {
    let mut edge = stored_edge(conn)?;
    if edge.size() > size {
        return Err(damaged(format!("tiles cover {} events but the ledger holds {size}", edge.size())));
    }
    extend_storing(conn, &mut edge, size)?;
    Ok(edge)
}

/// Where a tile build stands: events covered by stored tiles, of the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildProgress {
    pub covered: u64,
    pub head: u64,
}

/// Events whose tiles one transaction of [`build`] stores: 256 level-0 tiles
/// (8 MB) a commit, so an interrupted build loses at most that much.
const BUILD_STEP: u64 = TILE_WIDTH * TILE_WIDTH;

/// Stores the tiles of every full tile of the ledger that has none yet: a
/// ledger written before tiles were stored, or one whose build was
/// interrupted (each step commits, and the next run resumes after the last
/// stored tile). Runs under the append lock one step at a time, so appends
/// interleave. Returns where it started and where it ended.
pub fn build(
    conn: &mut DbConn,
    mut progress: impl FnMut(BuildProgress),
) -> Result<(BuildProgress, BuildProgress), StoreError> {
    let mut first = None;
    loop {
        let step = super::in_append_transaction(conn, |conn| {
            let head = events::head(conn)?.size;
            let mut edge = stored_edge(conn)?;
            if edge.size() > head {
                return Err(damaged(format!("tiles cover {} events but the ledger holds {head}", edge.size())));
            }
            let before = BuildProgress { covered: edge.size(), head };
            let target = (edge.size() + BUILD_STEP).min(head / TILE_WIDTH * TILE_WIDTH).max(edge.size());
            extend_storing(conn, &mut edge, target)?;
            Ok((before, BuildProgress { covered: edge.size(), head }))
        })?;
        let started = *first.get_or_insert(step.0);
        progress(step.1);
        if step.1.covered == step.0.covered {
            return Ok((started, step.1));
        }
    }
}
