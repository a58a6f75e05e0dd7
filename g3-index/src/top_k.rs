//! Keeping the best `k` of a stream of scored rows.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use g3_core::SearchDirection;

use crate::store::RowMatch;

/// A scored row ordered so that the heap's top is the worst kept entry.
#[derive(Debug, Clone, Copy)]
struct Ranked {
    /// The similarity, negated for dissimilar searches so that "greater is better" always.
    oriented: f32,
    row: u32,
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    /// "Greater" means worse: a lower oriented score, or on a tie the later row (so ties
    /// resolve to the lowest row, deterministically).
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .oriented
            .total_cmp(&self.oriented)
            .then(self.row.cmp(&other.row))
    }
}

/// The best `k` rows seen so far in one search direction.
#[derive(Debug, Clone)]
pub(crate) struct TopK {
    k: usize,
    sign: f32,
    heap: BinaryHeap<Ranked>,
    /// The worst kept oriented score once `k` are kept (−∞ before): anything below it is
    /// rejected with one comparison, which is what almost every offer of a long scan is.
    threshold: f32,
}

impl TopK {
    pub(crate) fn new(k: usize, direction: SearchDirection) -> Self {
        TopK {
            k,
            sign: match direction {
                SearchDirection::Similar => 1.0,
                SearchDirection::Dissimilar => -1.0,
            },
            heap: BinaryHeap::with_capacity(k + 1),
            // Keeping nothing, every offer is turned away by the first comparison.
            threshold: if k == 0 {
                f32::INFINITY
            } else {
                f32::NEG_INFINITY
            },
        }
    }

    /// Offers one row; cheap when it does not make the cut.
    #[inline]
    pub(crate) fn offer(&mut self, row: u32, similarity: f32) {
        let oriented = similarity * self.sign;
        if oriented < self.threshold {
            return;
        }
        self.insert(Ranked { oriented, row });
    }

    #[cold]
    fn insert(&mut self, candidate: Ranked) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(candidate);
        } else if let Some(mut worst) = self.heap.peek_mut()
            && candidate < *worst
        {
            *worst = candidate;
        } else {
            return;
        }
        if self.heap.len() == self.k
            && let Some(worst) = self.heap.peek()
        {
            self.threshold = worst.oriented;
        }
    }

    /// Offers a block of consecutive rows starting at `first_row`.
    #[inline]
    pub(crate) fn offer_block(&mut self, first_row: u32, similarities: &[f32]) {
        for (offset, &similarity) in similarities.iter().enumerate() {
            self.offer(first_row + offset as u32, similarity);
        }
    }

    /// Folds another partial result (of the same query and direction) into this one.
    pub(crate) fn merge(&mut self, other: TopK) {
        for ranked in other.heap {
            self.offer(ranked.row, ranked.oriented * self.sign);
        }
    }

    /// The kept rows, best first.
    pub(crate) fn into_sorted(self) -> Vec<RowMatch> {
        let sign = self.sign;
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|ranked| RowMatch {
                row: ranked.row as usize,
                similarity: ranked.oriented * sign,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_best_k_in_either_direction() {
        let scores = [0.3, -0.9, 0.8, 0.1, 0.8, -0.2];
        let mut similar = TopK::new(3, SearchDirection::Similar);
        let mut dissimilar = TopK::new(2, SearchDirection::Dissimilar);
        similar.offer_block(0, &scores);
        dissimilar.offer_block(0, &scores);
        let rows = |matches: Vec<RowMatch>| matches.iter().map(|m| m.row).collect::<Vec<_>>();
        // The tie at 0.8 goes to the lower row.
        assert_eq!(rows(similar.into_sorted()), vec![2, 4, 0]);
        let dissimilar = dissimilar.into_sorted();
        assert_eq!(rows(dissimilar.clone()), vec![1, 5]);
        assert_eq!(dissimilar[0].similarity, -0.9);
    }

    #[test]
    fn merging_partial_results_equals_one_pass() {
        let scores: Vec<f32> = (0..100).map(|i| ((i * 37) % 101) as f32 / 101.0).collect();
        let mut whole = TopK::new(7, SearchDirection::Similar);
        whole.offer_block(0, &scores);
        let mut left = TopK::new(7, SearchDirection::Similar);
        left.offer_block(0, &scores[..40]);
        let mut right = TopK::new(7, SearchDirection::Similar);
        right.offer_block(40, &scores[40..]);
        left.merge(right);
        assert_eq!(left.into_sorted(), whole.into_sorted());
    }

    #[test]
    fn k_zero_keeps_nothing() {
        let mut top = TopK::new(0, SearchDirection::Similar);
        top.offer(0, 1.0);
        assert!(top.into_sorted().is_empty());
    }
}
