//! One regression tree in XGBoost's array layout (its JSON model schema, `RegTree`): node `i`
//! has `left[i]`/`right[i]` children (`-1` for a leaf), a split on `feature[i]` at
//! `value[i]` (a row goes left when `x < value`, and a missing value goes to
//! `default_left`), and for a leaf `value[i]` is the leaf's margin contribution (the learning
//! rate already applied).

use serde_json::{Value, json};

/// A tree; all vectors have one entry per node, node 0 the root.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// Left child, `-1` for a leaf.
    pub left: Vec<i32>,
    /// Right child, `-1` for a leaf.
    pub right: Vec<i32>,
    /// Parent (`i32::MAX` for the root, as XGBoost writes it).
    pub parent: Vec<i32>,
    /// Split feature (0 for a leaf).
    pub feature: Vec<u32>,
    /// Split threshold, or the leaf value.
    pub value: Vec<f32>,
    /// Where a missing value goes.
    pub default_left: Vec<bool>,
    /// The node's weight `−G/(H+λ)` (for a leaf, its value).
    pub base_weight: Vec<f32>,
    /// The split's loss reduction (0 for a leaf).
    pub loss_change: Vec<f32>,
    /// Sum of the hessians of the node's training rows.
    pub sum_hessian: Vec<f32>,
}

impl Tree {
    /// Appends a node (a leaf until [`Tree::split`]), returning its index.
    pub fn push(&mut self, parent: i32, weight: f32, sum_hessian: f32) -> usize {
        self.left.push(-1);
        self.right.push(-1);
        self.parent.push(parent);
        self.feature.push(0);
        self.value.push(weight);
        self.default_left.push(false);
        self.base_weight.push(weight);
        self.loss_change.push(0.0);
        self.sum_hessian.push(sum_hessian);
        self.left.len() - 1
    }

    /// Makes leaf `i` a split node with children `l` and `r`.
    pub fn split(&mut self, i: usize, s: NodeSplit, l: usize, r: usize) {
        self.left[i] = l as i32;
        self.right[i] = r as i32;
        self.feature[i] = s.feature;
        self.value[i] = s.threshold;
        self.default_left[i] = s.default_left;
        self.loss_change[i] = s.loss_change;
    }

    /// Sets leaf `i`'s value (margin contribution).
    pub fn set_leaf(&mut self, i: usize, v: f32) {
        self.value[i] = v;
        self.base_weight[i] = v;
    }

    /// The leaf value row `x` (`[d]` raw features, NaN missing) reaches.
    pub fn predict(&self, x: &[f32]) -> f32 {
        let mut i = 0usize;
        while self.left[i] >= 0 {
            let v = x[self.feature[i] as usize];
            let go_left = if v.is_nan() {
                self.default_left[i]
            } else {
                v < self.value[i]
            };
            i = if go_left { self.left[i] } else { self.right[i] } as usize;
        }
        self.value[i]
    }

    /// Number of leaves.
    pub fn leaves(&self) -> usize {
        self.left.iter().filter(|&&l| l < 0).count()
    }

    /// The tree as an element of XGBoost's JSON model `trees` (schema of XGBoost 2–3,
    /// `doc/model.schema`), with id `id` and `d` features.
    pub fn to_xgboost_json(&self, id: usize, d: usize) -> Value {
        json!({
            "base_weights": self.base_weight,
            "categories": [],
            "categories_nodes": [],
            "categories_segments": [],
            "categories_sizes": [],
            "default_left": self.default_left.iter().map(|&b| u8::from(b)).collect::<Vec<_>>(),
            "id": id,
            "left_children": self.left,
            "loss_changes": self.loss_change,
            "parents": self.parent,
            "right_children": self.right,
            "split_conditions": self.value,
            "split_indices": self.feature,
            "split_type": vec![0u8; self.left.len()],
            "sum_hessian": self.sum_hessian,
            "tree_param": {
                "num_deleted": "0",
                "num_feature": d.to_string(),
                "num_nodes": self.left.len().to_string(),
                "size_leaf_vector": "1",
            },
        })
    }
}

/// A chosen split, as [`Tree::split`] records it.
#[derive(Debug, Clone, Copy)]
pub struct NodeSplit {
    /// Feature index.
    pub feature: u32,
    /// Threshold: `x < threshold` goes left.
    pub threshold: f32,
    /// Where a missing value goes.
    pub default_left: bool,
    /// Loss reduction.
    pub loss_change: f32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_thresholds_and_missing_follows_the_default() {
        let mut t = Tree::default();
        let root = t.push(i32::MAX, 0.0, 10.0);
        let l = t.push(root as i32, 0.0, 4.0);
        let r = t.push(root as i32, 0.0, 6.0);
        let s = NodeSplit {
            feature: 1,
            threshold: 0.5,
            default_left: true,
            loss_change: 2.0,
        };
        t.split(root, s, l, r);
        t.set_leaf(l, -1.0);
        t.set_leaf(r, 2.0);
        assert_eq!(t.predict(&[9.0, 0.4]), -1.0);
        assert_eq!(t.predict(&[9.0, 0.5]), 2.0);
        assert_eq!(t.predict(&[9.0, f32::NAN]), -1.0);
        assert_eq!(t.leaves(), 2);
        let j = t.to_xgboost_json(3, 2);
        assert_eq!(j["left_children"], json!([1, -1, -1]));
        assert_eq!(j["parents"], json!([i32::MAX, 0, 0]));
        assert_eq!(j["tree_param"]["num_nodes"], "3");
    }
}
