//! A grid over latitude and longitude that answers most nearest-place queries without
//! searching the k-d tree.
//!
//! Far from every place (the oceans, two thirds of a uniform sample of the globe) a k-d tree
//! search is slow: the nearest place is far, so the search ball is large and the tree visits
//! every leaf along the coasts that the ball reaches. Each grid cell therefore stores, once,
//! a superset of the places that are nearest to *some* point of the cell, and a query scans
//! those few candidates.
//!
//! Points map to keys (unit vectors for great circles, raw degrees for the planar metric)
//! where Euclidean distance orders places as the metric does. Let `c` be the key of a cell's
//! centre, `r` the largest distance from `c` to the key of any point of the cell, and `q0`
//! the place nearest to `c`. A place `q` is the nearest to some point `p = c + δ` (`|δ| ≤ r`)
//! only if it beats `q0` there, and `|p − q|² − |p − q0|² = |c − q|² − |c − q0|² −
//! 2δ·(q − q0)`; so `q` is a candidate only if `|c − q|² − |c − q0|² ≤ 2r·|q − q0|`. That
//! implies `|c − q| ≤ |c − q0| + 2r`, the ball the k-d tree enumerates first; the finer test
//! then keeps few places even where a distant town's many neighbours sit at almost the same
//! distance. Cells with more than [`MAX_CANDIDATES`] candidates split into four, down to
//! [`MAX_DEPTH`]; cells still crowded at that depth (dense land, where the tree is fast
//! anyway) are left to the tree, as are far cells whose ball overflows and cells past a
//! per-cell node budget, so that building stays bounded whatever the gazetteer.
//!
//! The answers are exact: the same distances the tree computes, over a set that always holds
//! the nearest place.

use kiddo::{ImmutableKdTree, SquaredEuclidean};
use rayon::prelude::*;
use std::num::NonZeroUsize;

/// Side of a top-level cell, in degrees.
const TOP_CELL_DEGREES: f64 = 2.0;
const TOP_ROWS: usize = 90;
const TOP_COLUMNS: usize = 180;
/// The most candidates a cell keeps; a crowded cell splits instead.
pub(crate) const MAX_CANDIDATES: usize = 24;
/// How many times a top-level cell may split (2° → 1/32° at depth 6, about 3.5 km).
pub(crate) const MAX_DEPTH: u32 = 6;
/// The most places within a cell's reach that are filtered for candidates; a cell reaching
/// more splits without filtering.
const PLACES_TO_FILTER: NonZeroUsize = NonZeroUsize::new(128).unwrap();
/// The same for a cell farther than [`FAR_CELL_RADII`] of its radii from every place.
const PLACES_TO_FILTER_FAR: NonZeroUsize = NonZeroUsize::new(2048).unwrap();
const FAR_CELL_RADII: f64 = 4.0;
/// The most nodes below one top-level cell: whatever the gazetteer, building stays bounded
/// (cells past the budget are left to the tree).
const NODES_PER_TOP_CELL: usize = 4096;
/// Slack added to every bound so that rounding never drops the nearest place (about 6 mm
/// on the unit sphere, 1e-9 degrees in the plane).
const MARGIN: f64 = 1e-9;

/// Where a point's key lives: Euclidean distance between keys orders places the way the
/// nearest-place metric does (unit vectors for great circles, raw degrees for the planar
/// metric).
pub(crate) type KeyOf<const K: usize> = fn(lat_deg: f64, lon_deg: f64) -> [f64; K];

#[derive(Debug, Clone, Copy)]
enum GridNode {
    /// `candidates[start..start + len]`.
    Candidates { start: u32, len: u32 },
    /// Four children at `nodes[first_child..first_child + 4]`, in the order
    /// (south-west, south-east, north-west, north-east).
    Split { first_child: u32 },
    /// Too many candidates to list (at the deepest level, past the node budget, or far from
    /// a dense crowd): ask the tree.
    Crowded,
}

/// A latitude/longitude rectangle, closed on every side.
#[derive(Debug, Clone, Copy)]
struct Cell {
    south: f64,
    north: f64,
    west: f64,
    east: f64,
}

impl Cell {
    fn top(row: usize, column: usize) -> Cell {
        let south = -90.0 + row as f64 * TOP_CELL_DEGREES;
        let west = -180.0 + column as f64 * TOP_CELL_DEGREES;
        Cell {
            south,
            north: south + TOP_CELL_DEGREES,
            west,
            east: west + TOP_CELL_DEGREES,
        }
    }

    fn middle(&self) -> (f64, f64) {
        (
            (self.south + self.north) / 2.0,
            (self.west + self.east) / 2.0,
        )
    }

    /// The quarter holding (`lat`, `lon`) and its index among the four children. Build and
    /// lookup both cut cells here, so they agree on every boundary.
    fn quarter(&self, lat: f64, lon: f64) -> (usize, Cell) {
        let (middle_lat, middle_lon) = self.middle();
        let north = lat >= middle_lat;
        let east = lon >= middle_lon;
        let mut quarter = *self;
        if north {
            quarter.south = middle_lat;
        } else {
            quarter.north = middle_lat;
        }
        if east {
            quarter.west = middle_lon;
        } else {
            quarter.east = middle_lon;
        }
        (usize::from(north) * 2 + usize::from(east), quarter)
    }

    fn quarters(&self) -> [Cell; 4] {
        let (middle_lat, middle_lon) = self.middle();
        [
            (self.south, middle_lat, self.west, middle_lon),
            (self.south, middle_lat, middle_lon, self.east),
            (middle_lat, self.north, self.west, middle_lon),
            (middle_lat, self.north, middle_lon, self.east),
        ]
        .map(|(south, north, west, east)| Cell {
            south,
            north,
            west,
            east,
        })
    }

    /// The centre's key and the largest key distance from it to any point of the cell.
    ///
    /// In the plane the farthest points are the corners. On the sphere too, for cells at
    /// most 180° wide: along a parallel the distance from the centre grows with the
    /// longitude difference, and along the cell's edge meridian it is unimodal in latitude,
    /// so it peaks at a corner.
    fn centre_and_radius<const K: usize>(&self, key_of: KeyOf<K>) -> ([f64; K], f64) {
        let (middle_lat, middle_lon) = self.middle();
        let centre = key_of(middle_lat, middle_lon);
        let radius = [
            (self.south, self.west),
            (self.south, self.east),
            (self.north, self.west),
            (self.north, self.east),
        ]
        .into_iter()
        .map(|(lat, lon)| squared_distance(&centre, &key_of(lat, lon)).sqrt())
        .fold(0.0, f64::max);
        (centre, radius)
    }
}

fn squared_distance<const K: usize>(a: &[f64; K], b: &[f64; K]) -> f64 {
    a.iter().zip(b).map(|(a, b)| (a - b) * (a - b)).sum()
}

/// Per-cell candidate lists over a k-d tree's places; see the module documentation.
#[derive(Debug)]
pub(crate) struct CandidateGrid<const K: usize> {
    /// The top-level cells (row-major, from the south-west), then every split cell's
    /// children.
    nodes: Vec<GridNode>,
    candidates: Vec<u32>,
}

/// One top-level cell's subtree, built on its own thread; indices are local until
/// [`CandidateGrid::build`] concatenates the subtrees.
struct Subtree<const K: usize> {
    root: GridNode,
    nodes: Vec<GridNode>,
    candidates: Vec<u32>,
}

impl<const K: usize> CandidateGrid<K> {
    /// Builds the grid over `tree`, whose items are indices into `keys`.
    pub(crate) fn build(
        tree: &ImmutableKdTree<f64, K>,
        keys: &[[f64; K]],
        key_of: KeyOf<K>,
    ) -> Self {
        let subtrees: Vec<Subtree<K>> = (0..TOP_ROWS * TOP_COLUMNS)
            .into_par_iter()
            .map(|index| {
                let mut subtree = Subtree {
                    root: GridNode::Crowded,
                    nodes: Vec::new(),
                    candidates: Vec::new(),
                };
                let cell = Cell::top(index / TOP_COLUMNS, index % TOP_COLUMNS);
                subtree.root = build_node(tree, keys, key_of, cell, 0, &mut subtree);
                subtree
            })
            .collect();
        let mut nodes: Vec<GridNode> = subtrees.iter().map(|subtree| subtree.root).collect();
        let mut candidates = Vec::new();
        let relocate = |node: GridNode, node_base: usize, candidate_base: usize| match node {
            GridNode::Candidates { start, len } => GridNode::Candidates {
                start: start + candidate_base as u32,
                len,
            },
            GridNode::Split { first_child } => GridNode::Split {
                first_child: first_child + node_base as u32,
            },
            GridNode::Crowded => GridNode::Crowded,
        };
        for (index, subtree) in subtrees.into_iter().enumerate() {
            let (node_base, candidate_base) = (nodes.len(), candidates.len());
            nodes[index] = relocate(subtree.root, node_base, candidate_base);
            nodes.extend(
                subtree
                    .nodes
                    .into_iter()
                    .map(|node| relocate(node, node_base, candidate_base)),
            );
            candidates.extend(subtree.candidates);
        }
        CandidateGrid { nodes, candidates }
    }

    /// The nearest place to (`lat`, `lon`), whose key is `key`, with its squared key
    /// distance; `None` where the cell is crowded and the tree must answer. `keys` are the
    /// places' keys the grid was built over. Ties go to the lower place index.
    #[inline]
    pub(crate) fn nearest(
        &self,
        keys: &[[f64; K]],
        lat: f64,
        lon: f64,
        key: &[f64; K],
    ) -> Option<(u32, f64)> {
        let row = (((lat + 90.0) / TOP_CELL_DEGREES) as usize).min(TOP_ROWS - 1);
        let column = (((lon + 180.0) / TOP_CELL_DEGREES) as usize).min(TOP_COLUMNS - 1);
        let mut cell = Cell::top(row, column);
        let mut node = self.nodes[row * TOP_COLUMNS + column];
        loop {
            match node {
                GridNode::Candidates { start, len } => {
                    let candidates = &self.candidates[start as usize..(start + len) as usize];
                    let mut best = (u32::MAX, f64::INFINITY);
                    // Candidates are in place order, so a strict `<` keeps the lower place on a tie.
                    for &place in candidates {
                        let distance = squared_distance(&keys[place as usize], key);
                        if distance < best.1 {
                            best = (place, distance);
                        }
                    }
                    // Never empty (the place nearest the centre always passes), but an empty
                    // list would defer to the tree rather than name no place.
                    return (best.0 != u32::MAX).then_some(best);
                }
                GridNode::Split { first_child } => {
                    let (quarter, child) = cell.quarter(lat, lon);
                    cell = child;
                    node = self.nodes[first_child as usize + quarter];
                }
                GridNode::Crowded => return None,
            }
        }
    }

    /// How many cells hold candidate lists and how many are left to the tree (for tests and
    /// diagnostics).
    #[cfg(test)]
    pub(crate) fn leaf_counts(&self) -> (usize, usize) {
        let listed = self
            .nodes
            .iter()
            .filter(|node| matches!(node, GridNode::Candidates { .. }))
            .count();
        let crowded = self
            .nodes
            .iter()
            .filter(|node| matches!(node, GridNode::Crowded))
            .count();
        (listed, crowded)
    }
}

fn build_node<const K: usize>(
    tree: &ImmutableKdTree<f64, K>,
    keys: &[[f64; K]],
    key_of: KeyOf<K>,
    cell: Cell,
    depth: u32,
    subtree: &mut Subtree<K>,
) -> GridNode {
    let (centre, radius) = cell.centre_and_radius(key_of);
    let radius = radius + MARGIN;
    let nearest = tree
        .query(&centre)
        .nearest_one::<SquaredEuclidean<f64>>()
        .execute();
    let nearest_key = keys[nearest.item as usize];
    let nearest_distance = nearest.distance.sqrt();
    let reach = nearest_distance + 2.0 * radius + MARGIN;
    // Near places, splitting the cell shrinks its ball. Far from them it hardly does (the
    // ball's radius is mostly the distance to the nearest place), so a far cell filters a
    // larger crowd at once rather than splitting in vain.
    let far = nearest_distance > FAR_CELL_RADII * radius;
    let limit = if far {
        PLACES_TO_FILTER_FAR
    } else {
        PLACES_TO_FILTER
    };
    let within_reach = tree
        .query(&centre)
        .nearest_n::<SquaredEuclidean<f64>>(limit)
        .within(reach * reach)
        .unsorted()
        .execute();
    if within_reach.len() < limit.get() {
        // The tighter test of the module documentation: for p = c + δ, |δ| ≤ r,
        // |p − q|² − |p − q0|² = |c − q|² − |c − q0|² − 2δ·(q − q0), so q can beat q0
        // somewhere in the cell only if |c − q|² − |c − q0|² ≤ 2r|q − q0|.
        let mut places: Vec<u32> = within_reach
            .iter()
            .filter(|hit| {
                let key = &keys[hit.item as usize];
                hit.distance - nearest.distance
                    <= 2.0 * radius * squared_distance(key, &nearest_key).sqrt() + MARGIN
            })
            .map(|hit| hit.item)
            .collect();
        if places.len() <= MAX_CANDIDATES {
            places.sort_unstable();
            let start = subtree.candidates.len() as u32;
            subtree.candidates.extend(places);
            return GridNode::Candidates {
                start,
                len: subtree.candidates.len() as u32 - start,
            };
        }
    }
    // A far cell whose ball overflows even the larger limit stays crowded: its quarters'
    // balls would be almost as full (a gazetteer of one city's streets would otherwise
    // split every cell of the globe).
    let far_and_overflowing = far && within_reach.len() == limit.get();
    if far_and_overflowing || depth == MAX_DEPTH || subtree.nodes.len() + 4 > NODES_PER_TOP_CELL {
        return GridNode::Crowded;
    }
    let first_child = subtree.nodes.len();
    subtree.nodes.extend([GridNode::Crowded; 4]);
    for (offset, quarter) in cell.quarters().into_iter().enumerate() {
        let child = build_node(tree, keys, key_of, quarter, depth + 1, subtree);
        subtree.nodes[first_child + offset] = child;
    }
    GridNode::Split {
        first_child: first_child as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sphere_key(lat: f64, lon: f64) -> [f64; 3] {
        let (lat, lon) = (lat.to_radians(), lon.to_radians());
        [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
    }

    fn planar_key(lat: f64, lon: f64) -> [f64; 2] {
        [lat, lon]
    }

    /// The lowest-indexed place at the smallest key distance, by scanning them all.
    fn brute_force<const K: usize>(keys: &[[f64; K]], key: &[f64; K]) -> (u32, f64) {
        let mut best = (u32::MAX, f64::INFINITY);
        for (place, candidate) in keys.iter().enumerate() {
            let distance = squared_distance(candidate, key);
            if distance < best.1 {
                best = (place as u32, distance);
            }
        }
        best
    }

    fn build_grid<const K: usize>(
        places: &[(f64, f64)],
        key_of: KeyOf<K>,
    ) -> (Vec<[f64; K]>, CandidateGrid<K>) {
        let keys: Vec<[f64; K]> = places.iter().map(|&(lat, lon)| key_of(lat, lon)).collect();
        let tree = ImmutableKdTree::new_from_slice(&keys).unwrap();
        let grid = CandidateGrid::build(&tree, &keys, key_of);
        (keys, grid)
    }

    /// Checks every query the grid answers against the brute-force nearest place; returns
    /// how many the grid answered.
    fn check_against_brute_force<const K: usize>(
        places: &[(f64, f64)],
        queries: &[(f64, f64)],
        key_of: KeyOf<K>,
    ) -> usize {
        let (keys, grid) = build_grid(places, key_of);
        let mut answered = 0;
        for &(lat, lon) in queries {
            let key = key_of(lat, lon);
            if let Some(found) = grid.nearest(&keys, lat, lon, &key) {
                answered += 1;
                assert_eq!(found, brute_force(&keys, &key), "query ({lat}, {lon})");
            }
        }
        answered
    }

    /// Queries on and next to cell boundaries at every depth, at the poles and the
    /// antimeridian, plus a scatter.
    fn awkward_queries() -> Vec<(f64, f64)> {
        let mut queries = Vec::new();
        let step = TOP_CELL_DEGREES / f64::from(1 << MAX_DEPTH);
        for &lat in &[
            -90.0, -89.9, -45.0, -0.0625, 0.0, 1.0, 33.875, 88.0, 89.999, 90.0,
        ] {
            for &lon in &[-180.0, -179.875, -0.125, 0.0, 2.0, 97.5, 179.9375, 180.0] {
                for offset in [0.0, 1e-12, -1e-12, step / 2.0] {
                    let lat = (lat + offset).clamp(-90.0, 90.0);
                    let lon = (lon + offset).clamp(-180.0, 180.0);
                    queries.push((lat, lon));
                }
            }
        }
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..2000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let v = (state >> 11) as f64 / (1u64 << 53) as f64;
            queries.push(((2.0 * u - 1.0).asin().to_degrees(), 360.0 * v - 180.0));
        }
        queries
    }

    /// A few sparse places and one crowded city: the crowd forces splits down to the
    /// deepest level and leaves cells to the tree.
    fn sparse_and_crowded() -> Vec<(f64, f64)> {
        let mut places = vec![
            (48.85, 2.35),
            (-33.9, 151.2),
            (64.1, -21.9),
            (-17.8, 177.4),
            (-14.3, -170.7),
            (89.5, 0.0),
            (-89.9, 139.0),
            (0.0, 0.0),
        ];
        for i in 0..200 {
            places.push((
                35.0 + f64::from(i % 20) * 1e-3,
                139.0 + f64::from(i / 20) * 1e-3,
            ));
        }
        places
    }

    /// The grid agrees with brute force everywhere it answers, and answers at least 90% of
    /// the queries (those not right next to the crowd).
    fn answers_most_queries_exactly<const K: usize>(key_of: KeyOf<K>) {
        let places = sparse_and_crowded();
        let mut queries = awkward_queries();
        queries.extend(places.iter().map(|&(lat, lon)| (lat + 1e-4, lon - 1e-4)));
        let answered = check_against_brute_force(&places, &queries, key_of);
        assert!(
            answered * 10 > queries.len() * 9,
            "{answered} of {}",
            queries.len()
        );
    }

    #[test]
    fn sphere_grid_finds_what_brute_force_finds() {
        answers_most_queries_exactly(sphere_key);
    }

    #[test]
    fn planar_grid_finds_what_brute_force_finds() {
        answers_most_queries_exactly(planar_key);
    }

    #[test]
    fn crowded_cells_are_left_to_the_tree() {
        let places = sparse_and_crowded();
        let (keys, grid) = build_grid(&places, sphere_key);
        let (listed, crowded) = grid.leaf_counts();
        assert!(listed >= TOP_ROWS * TOP_COLUMNS - 1, "{listed}");
        assert!(crowded >= 1, "the 200-place crowd fits no cell's list");
        let (lat, lon) = (35.0105, 139.0045);
        assert_eq!(grid.nearest(&keys, lat, lon, &sphere_key(lat, lon)), None);
    }

    /// A gazetteer that is one dense town: every cell on the globe is far from it and its
    /// ball overflows, so cells stay whole and crowded rather than splitting, and the tree
    /// answers.
    #[test]
    fn a_single_dense_town_leaves_far_cells_whole() {
        let places: Vec<(f64, f64)> = (0..2100)
            .map(|i| {
                (
                    45.0 + f64::from(i % 50) * 1e-4,
                    7.0 + f64::from(i / 50) * 1e-4,
                )
            })
            .collect();
        let (keys, grid) = build_grid(&places, sphere_key);
        assert!(
            grid.nodes.len() < 2 * TOP_ROWS * TOP_COLUMNS,
            "{}",
            grid.nodes.len()
        );
        for &(lat, lon) in awkward_queries().iter().step_by(10) {
            let key = sphere_key(lat, lon);
            if let Some(found) = grid.nearest(&keys, lat, lon, &key) {
                assert_eq!(found, brute_force(&keys, &key), "query ({lat}, {lon})");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

        /// Random gazetteers, with duplicated places (exact ties) and tight clusters.
        #[test]
        fn random_gazetteers_match_brute_force(
            scattered in prop::collection::vec((-90.0f64..=90.0, -180.0f64..=180.0), 1..60),
            cluster in prop::collection::vec((0.0f64..0.05, 0.0f64..0.05), 0..40),
            centre in (-80.0f64..80.0, -170.0f64..170.0),
            duplicate in any::<bool>(),
        ) {
            let mut places = scattered.clone();
            places.extend(cluster.iter().map(|&(a, b)| (centre.0 + a, centre.1 + b)));
            if duplicate {
                places.push(scattered[0]);
            }
            let mut queries = awkward_queries();
            queries.truncate(600);
            queries.extend(places.iter().map(|&(lat, lon)| (lat, (lon + 1e-3).min(180.0))));
            check_against_brute_force(&places, &queries, sphere_key);
            check_against_brute_force(&places, &queries, planar_key);
        }
    }
}
