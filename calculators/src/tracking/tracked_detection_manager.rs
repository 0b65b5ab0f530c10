//! Association of detections with tracked boxes (MediaPipe's TrackedDetectionManager rules):
//! a detection waits until the tracker reports a box with its id, replaces the detections it
//! duplicates (keeping the id of the first detection of the object and merging labels), follows
//! its box, and is dropped when it times out or leaves the view.
//!
//! Easing a re-detected object's box instead of letting it leap is done by the calculator
//! (`TrackedDetectionManagerCalculator`), which knows what it showed last.
//!
//! Plain module: no framework types.

use std::collections::BTreeMap;

/// A normalized, possibly rotated rectangle (center, size, rotation in radians).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NormRect {
    /// Center x in [0, 1].
    pub x_center: f32,
    /// Center y in [0, 1].
    pub y_center: f32,
    /// Width as a fraction of the frame width.
    pub width: f32,
    /// Height as a fraction of the frame height.
    pub height: f32,
    /// Rotation in radians (counterclockwise).
    pub rotation: f32,
}

impl NormRect {
    /// From left, top, right, bottom (normalized) and a rotation.
    pub fn from_ltrb(left: f32, top: f32, right: f32, bottom: f32, rotation: f32) -> NormRect {
        NormRect {
            x_center: (left + right) / 2.0,
            y_center: (top + bottom) / 2.0,
            width: right - left,
            height: bottom - top,
            rotation,
        }
    }

    /// The corners, top-left, bottom-left, bottom-right, top-right, rotated about the center.
    pub fn corners(&self) -> [(f32, f32); 4] {
        let (hw, hh) = (self.width / 2.0, self.height / 2.0);
        let local = [(-hw, -hh), (-hw, hh), (hw, hh), (hw, -hh)];
        let (s, c) = if self.rotation.abs() > 1e-5 {
            self.rotation.sin_cos()
        } else {
            (0.0, 1.0)
        };
        local.map(|(x, y)| (self.x_center + x * c - y * s, self.y_center + x * s + y * c))
    }

    /// The axis-aligned box around the corners: left, top, right, bottom.
    pub fn bounds(&self) -> (f32, f32, f32, f32) {
        let corners = self.corners();
        let (mut l, mut t, mut r, mut b) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for (x, y) in corners {
            l = l.min(x);
            t = t.min(y);
            r = r.max(x);
            b = b.max(y);
        }
        (l, t, r, b)
    }

    /// Area (width x height; rotation does not change it).
    pub fn area(&self) -> f32 {
        self.width.max(0.0) * self.height.max(0.0)
    }

    /// True if all four corners lie outside the unit square.
    pub fn is_out_of_view(&self) -> bool {
        self.corners()
            .iter()
            .all(|&(x, y)| !(0.0..=1.0).contains(&x) || !(0.0..=1.0).contains(&y))
    }
}

/// Tuning of the association.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ManagerConfig {
    /// Boxes whose areas differ by more than this factor are never the same object.
    pub max_area_ratio: f32,
    /// Same object when the intersection covers more than this share of either box.
    pub min_overlap_ratio: f32,
    /// Detections not updated for this long are dropped (ms).
    pub timeout_ms: i64,
    /// Ours: two detections with no label in common are the same object only if, besides
    /// the overlap rule, their IoU is at least this: a box detected again under another
    /// label still merges (labels merged), while a cyclist's Person and Bicycle boxes stay
    /// two objects. 0: MediaPipe's rule, overlap alone; 1: only a shared label merges.
    pub cross_label_min_iou: f32,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            max_area_ratio: 3.0,
            min_overlap_ratio: 0.5,
            timeout_ms: 5000,
            cross_label_min_iou: 0.0,
        }
    }
}

/// MediaPipe's "same object" test: not IoU, but intersection over either box's area, for boxes
/// of comparable size. Rotation is ignored.
pub fn is_same_object(a: &NormRect, b: &NormRect, config: &ManagerConfig) -> bool {
    let (area_a, area_b) = (a.area(), b.area());
    if area_a <= 0.0 || area_b <= 0.0 {
        return false;
    }
    if area_a / area_b > config.max_area_ratio || area_b / area_a > config.max_area_ratio {
        return false;
    }
    let inter = intersection(a, b);
    inter / area_a > config.min_overlap_ratio || inter / area_b > config.min_overlap_ratio
}

/// The area of the intersection of `a` and `b` taken as axis-aligned (rotation ignored).
fn intersection(a: &NormRect, b: &NormRect) -> f32 {
    let ix = ((a.x_center + a.width / 2.0).min(b.x_center + b.width / 2.0)
        - (a.x_center - a.width / 2.0).max(b.x_center - b.width / 2.0))
    .max(0.0);
    let iy = ((a.y_center + a.height / 2.0).min(b.y_center + b.height / 2.0)
        - (a.y_center - a.height / 2.0).max(b.y_center - b.height / 2.0))
    .max(0.0);
    ix * iy
}

/// Intersection over union of `a` and `b` taken as axis-aligned (rotation ignored).
fn iou(a: &NormRect, b: &NormRect) -> f32 {
    let inter = intersection(a, b);
    let union = a.area() + b.area() - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// A detection being tracked.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackedDetection {
    /// The id the detection got (and its tracked box carries).
    pub unique_id: i64,
    /// The id of the first detection of the same object, if this one replaced others.
    pub previous_id: Option<i64>,
    /// When the detection was made (ms).
    pub initial_ms: i64,
    /// When its box was last updated (ms).
    pub last_updated_ms: i64,
    /// Where it is.
    pub rect: NormRect,
    /// Label -> best score seen.
    pub labels: BTreeMap<String, f32>,
}

impl TrackedDetection {
    /// A new detection at `rect`, made at `time_ms`.
    pub fn new(unique_id: i64, rect: NormRect, time_ms: i64, labels: &[(String, f32)]) -> Self {
        let mut d = TrackedDetection {
            unique_id,
            previous_id: None,
            initial_ms: time_ms,
            last_updated_ms: time_ms,
            rect,
            labels: BTreeMap::new(),
        };
        d.merge_labels(labels.iter().map(|(l, s)| (l.as_str(), *s)));
        d
    }

    fn merge_labels<'a>(&mut self, labels: impl Iterator<Item = (&'a str, f32)>) {
        for (label, score) in labels {
            let e = self.labels.entry(label.to_string()).or_insert(score);
            *e = e.max(score);
        }
    }

    /// Whether `other` is the same object: [`is_same_object`] on their boxes and, without a
    /// label in common, an IoU of at least `cross_label_min_iou`.
    pub fn is_same_as(&self, other: &TrackedDetection, config: &ManagerConfig) -> bool {
        is_same_object(&self.rect, &other.rect, config)
            && (config.cross_label_min_iou <= 0.0
                || self.labels.keys().any(|l| other.labels.contains_key(l))
                || iou(&self.rect, &other.rect) >= config.cross_label_min_iou)
    }

    /// The id users see: the first detection's id of this object.
    pub fn public_id(&self) -> i64 {
        self.previous_id.unwrap_or(self.unique_id)
    }

    /// Inherits the identity of `other` (a duplicate being removed): labels, and the first id.
    fn absorb(&mut self, other: &TrackedDetection) {
        let labels: Vec<(String, f32)> =
            other.labels.iter().map(|(l, s)| (l.clone(), *s)).collect();
        self.merge_labels(labels.iter().map(|(l, s)| (l.as_str(), *s)));
    }
}

/// One tracked detection as reported.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportedDetection {
    /// The persistent id of the object.
    pub id: i64,
    /// Axis-aligned box: left, top, right, bottom (normalized).
    pub bounds: (f32, f32, f32, f32),
    /// Labels by descending score.
    pub labels: Vec<(String, f32)>,
}

/// A box from the tracker.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackedBox {
    /// The id of the detection the box started from.
    pub id: i64,
    /// Where the box is.
    pub rect: NormRect,
    /// When (ms).
    pub time_ms: i64,
}

/// The association state.
#[derive(Debug, Default)]
pub struct TrackedDetectionManager {
    config: ManagerConfig,
    waiting: BTreeMap<i64, TrackedDetection>,
    active: BTreeMap<i64, TrackedDetection>,
}

impl TrackedDetectionManager {
    /// A manager with `config`.
    pub fn new(config: ManagerConfig) -> Self {
        TrackedDetectionManager {
            config,
            ..Default::default()
        }
    }

    /// A new detection; it joins once the tracker reports a box with its id.
    pub fn add_detection(&mut self, detection: TrackedDetection) {
        self.waiting.insert(detection.unique_id, detection);
    }

    /// Detections being tracked.
    pub fn active(&self) -> impl Iterator<Item = &TrackedDetection> {
        self.active.values()
    }

    /// Applies one frame of tracked boxes at `now_ms`; returns the ids to cancel in the tracker
    /// (duplicates, timed out, out of view), in increasing order.
    pub fn update(&mut self, boxes: &[TrackedBox], now_ms: i64) -> Vec<i64> {
        let mut removed = Vec::new();
        for b in boxes {
            if let Some(det) = self.waiting.remove(&b.id) {
                removed.extend(self.add_tracked(det, b.rect));
            }
            if self.active.contains_key(&b.id) {
                self.update_location(b.id, b.rect, b.time_ms);
                removed.extend(self.remove_duplicates_of(b.id));
            }
        }
        let timeout = self.config.timeout_ms;
        let stale: Vec<i64> = self
            .active
            .values()
            .filter(|d| now_ms - d.last_updated_ms > timeout || d.rect.is_out_of_view())
            .map(|d| d.unique_id)
            .collect();
        for id in stale {
            self.active.remove(&id);
            removed.push(id);
        }
        // Waiting detections the tracker never picked up also time out.
        self.waiting.retain(|_, d| now_ms - d.initial_ms <= timeout);
        removed.sort_unstable();
        removed.dedup();
        removed
    }

    /// Adds a detection whose box the tracker now reports: it replaces every duplicate.
    fn add_tracked(&mut self, mut det: TrackedDetection, rect: NormRect) -> Vec<i64> {
        det.rect = rect;
        let duplicates: Vec<i64> = self
            .active
            .values()
            .filter(|d| d.is_same_as(&det, &self.config))
            .map(|d| d.unique_id)
            .collect();
        let mut latest: Option<TrackedDetection> = None;
        for id in &duplicates {
            if let Some(old) = self.active.remove(id) {
                det.absorb(&old);
                if latest
                    .as_ref()
                    .is_none_or(|l| old.initial_ms >= l.initial_ms)
                {
                    latest = Some(old);
                }
            }
        }
        if let Some(old) = latest {
            det.previous_id = Some(old.public_id());
        }
        self.active.insert(det.unique_id, det);
        duplicates
    }

    fn update_location(&mut self, id: i64, rect: NormRect, time_ms: i64) {
        if let Some(d) = self.active.get_mut(&id) {
            d.rect = rect;
            d.last_updated_ms = time_ms;
        }
    }

    /// Resolves duplicates among detections updated at the same time as `id`.
    fn remove_duplicates_of(&mut self, id: i64) -> Vec<i64> {
        let Some(me) = self.active.get(&id).cloned() else {
            return Vec::new();
        };
        let others: Vec<TrackedDetection> = self
            .active
            .values()
            .filter(|d| {
                d.unique_id != id
                    && d.last_updated_ms == me.last_updated_ms
                    && d.is_same_as(&me, &self.config)
            })
            .cloned()
            .collect();
        let mut removed = Vec::new();
        let mut survivor = me;
        for other in others {
            // The later detection survives; on a tie, the one being updated.
            let (keep, lose) = if other.initial_ms > survivor.initial_ms {
                (other, survivor)
            } else {
                (survivor, other)
            };
            let mut keep = keep;
            keep.absorb(&lose);
            if keep.previous_id.is_none() {
                keep.previous_id = Some(lose.public_id());
            }
            self.active.remove(&lose.unique_id);
            removed.push(lose.unique_id);
            survivor = keep;
        }
        self.active.insert(survivor.unique_id, survivor);
        removed
    }

    /// The detections to report at `now_ms`: only those updated at or after `now_ms`, so a
    /// lost track disappears at once.
    pub fn report(&self, now_ms: i64) -> Vec<ReportedDetection> {
        self.active
            .values()
            .filter(|d| d.last_updated_ms >= now_ms)
            .map(|d| {
                let mut labels: Vec<(String, f32)> =
                    d.labels.iter().map(|(l, s)| (l.clone(), *s)).collect();
                labels.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                ReportedDetection {
                    id: d.public_id(),
                    bounds: d.rect.bounds(),
                    labels,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(l: f32, t: f32, r: f32, b: f32) -> NormRect {
        NormRect::from_ltrb(l, t, r, b, 0.0)
    }

    fn det(id: i64, r: NormRect, t: i64, label: &str, score: f32) -> TrackedDetection {
        TrackedDetection::new(id, r, t, &[(label.to_string(), score)])
    }

    fn tb(id: i64, r: NormRect, t: i64) -> TrackedBox {
        TrackedBox {
            id,
            rect: r,
            time_ms: t,
        }
    }

    #[test]
    fn same_object_is_overlap_of_the_smaller_box_not_iou() {
        let c = ManagerConfig::default();
        let big = rect(0.0, 0.0, 0.4, 0.4);
        let inside = rect(0.1, 0.1, 0.3, 0.3); // 4x smaller: too different in size
        assert!(!is_same_object(&big, &inside, &c));
        let half = rect(0.0, 0.0, 0.4, 0.25); // IoU 0.625 of the smaller's... area ratio 1.6
        assert!(is_same_object(&big, &half, &c));
        // IoU = 0.33 but intersection covers 0.6 of each box -> MediaPipe calls it the same.
        let a = rect(0.0, 0.0, 0.5, 0.5);
        let b = rect(0.2, 0.0, 0.7, 0.5);
        assert!(is_same_object(&a, &b, &c));
        let far = rect(0.6, 0.6, 0.9, 0.9);
        assert!(!is_same_object(&a, &far, &c));
    }

    #[test]
    fn a_detection_waits_for_its_box_then_follows_it() {
        let mut m = TrackedDetectionManager::new(ManagerConfig::default());
        m.add_detection(det(1, rect(0.1, 0.1, 0.3, 0.3), 100, "Person", 0.6));
        assert!(
            m.report(100).is_empty(),
            "not reported before the tracker has its box"
        );
        m.update(&[tb(1, rect(0.12, 0.1, 0.32, 0.3), 133)], 133);
        let r = m.report(133);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].id, 1);
        assert!((r[0].bounds.0 - 0.12).abs() < 1e-6);
        assert_eq!(r[0].labels, vec![("Person".to_string(), 0.6)]);
        // A frame without its box: the detection is not reported (lost at once).
        m.update(&[], 166);
        assert!(m.report(166).is_empty());
    }

    #[test]
    fn a_redetection_replaces_the_old_track_and_keeps_the_first_id_and_labels() {
        let mut m = TrackedDetectionManager::new(ManagerConfig::default());
        m.add_detection(det(1, rect(0.1, 0.1, 0.3, 0.3), 0, "Person", 0.5));
        m.update(&[tb(1, rect(0.1, 0.1, 0.3, 0.3), 0)], 0);
        m.add_detection(det(2, rect(0.11, 0.1, 0.31, 0.3), 300, "Pedestrian", 0.7));
        let cancelled = m.update(
            &[
                tb(1, rect(0.12, 0.1, 0.32, 0.3), 333),
                tb(2, rect(0.11, 0.1, 0.31, 0.3), 333),
            ],
            333,
        );
        assert_eq!(
            cancelled,
            vec![1],
            "the old track is cancelled in the tracker"
        );
        let r = m.report(333);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].id, 1, "the object keeps the id of its first detection");
        assert_eq!(
            r[0].labels,
            vec![("Pedestrian".to_string(), 0.7), ("Person".to_string(), 0.5)]
        );
        // A third detection of the same object still reports id 1.
        m.add_detection(det(3, rect(0.13, 0.1, 0.33, 0.3), 600, "Person", 0.9));
        assert_eq!(
            m.update(
                &[
                    tb(2, rect(0.12, 0.1, 0.32, 0.3), 633),
                    tb(3, rect(0.13, 0.1, 0.33, 0.3), 633)
                ],
                633
            ),
            vec![2]
        );
        assert_eq!(m.report(633)[0].id, 1);
        assert_eq!(m.report(633)[0].labels[0], ("Person".to_string(), 0.9));
    }

    #[test]
    fn different_objects_keep_their_own_ids() {
        let mut m = TrackedDetectionManager::new(ManagerConfig::default());
        m.add_detection(det(1, rect(0.1, 0.1, 0.2, 0.3), 0, "Person", 0.5));
        m.add_detection(det(2, rect(0.6, 0.1, 0.7, 0.3), 0, "Person", 0.5));
        let cancelled = m.update(
            &[
                tb(1, rect(0.1, 0.1, 0.2, 0.3), 0),
                tb(2, rect(0.6, 0.1, 0.7, 0.3), 0),
            ],
            0,
        );
        assert!(cancelled.is_empty());
        let ids: Vec<i64> = m.report(0).iter().map(|d| d.id).collect();
        assert_eq!(ids, vec![1, 2]);
    }

    #[test]
    fn with_cross_label_min_iou_overlapping_objects_of_other_labels_stay_apart() {
        let rider = rect(0.4, 0.1, 0.6, 0.7);
        // The intersection covers 0.58 of the rider (MediaPipe: the same object); IoU 0.38.
        let bicycle = rect(0.38, 0.35, 0.62, 0.9);
        assert!((iou(&rider, &bicycle) - 0.07 / 0.182).abs() < 1e-4);
        for (cross_label_min_iou, tracks) in [(0.0, 1), (0.3, 1), (0.7, 2), (1.0, 2)] {
            let mut m = TrackedDetectionManager::new(ManagerConfig {
                cross_label_min_iou,
                ..ManagerConfig::default()
            });
            m.add_detection(det(1, rider, 0, "Person", 0.6));
            m.add_detection(det(2, bicycle, 0, "Bicycle", 0.5));
            m.update(&[tb(1, rider, 0), tb(2, bicycle, 0)], 0);
            assert_eq!(
                m.report(0).len(),
                tracks,
                "cross_label_min_iou {cross_label_min_iou}"
            );
            // A re-detection with the same label still replaces its track.
            m.add_detection(det(3, rect(0.41, 0.1, 0.61, 0.7), 300, "Person", 0.7));
            let tracked = [tb(1, rider, 300), tb(2, bicycle, 300), tb(3, rider, 300)];
            m.update(&tracked, 300);
            let ids: Vec<i64> = m.report(300).iter().map(|d| d.id).collect();
            assert_eq!(ids.len(), tracks);
            assert!(ids.contains(&1), "the rider keeps its first id: {ids:?}");
        }
        // The same box detected again under another label is still the same object.
        let mut m = TrackedDetectionManager::new(ManagerConfig {
            cross_label_min_iou: 0.7,
            ..ManagerConfig::default()
        });
        let car = rect(0.1, 0.5, 0.4, 0.7);
        m.add_detection(det(1, car, 0, "Car", 0.5));
        m.update(&[tb(1, car, 0)], 0);
        m.add_detection(det(2, rect(0.11, 0.5, 0.41, 0.7), 300, "Vehicle", 0.6));
        m.update(
            &[tb(1, car, 300), tb(2, rect(0.11, 0.5, 0.41, 0.7), 300)],
            300,
        );
        let r = m.report(300);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].id, 1);
        assert_eq!(r[0].labels.len(), 2, "labels merged: {:?}", r[0].labels);
    }

    #[test]
    fn timeouts_and_leaving_the_view_remove_tracks() {
        let mut m = TrackedDetectionManager::new(ManagerConfig::default());
        m.add_detection(det(1, rect(0.1, 0.1, 0.2, 0.2), 0, "Car", 0.5));
        m.add_detection(det(2, rect(0.5, 0.5, 0.6, 0.6), 0, "Car", 0.5));
        m.update(
            &[
                tb(1, rect(0.1, 0.1, 0.2, 0.2), 0),
                tb(2, rect(0.5, 0.5, 0.6, 0.6), 0),
            ],
            0,
        );
        // Box 2 drifts fully out of view; box 1 stops being reported.
        let cancelled = m.update(&[tb(2, rect(1.1, 0.5, 1.2, 0.6), 1000)], 1000);
        assert_eq!(cancelled, vec![2]);
        assert_eq!(m.active().count(), 1);
        let cancelled = m.update(&[], 5001);
        assert_eq!(cancelled, vec![1], "not updated for more than 5 s");
        assert_eq!(m.active().count(), 0);
    }

    #[test]
    fn rotated_boxes_report_their_axis_aligned_bounds() {
        let r = NormRect {
            x_center: 0.5,
            y_center: 0.5,
            width: 0.2,
            height: 0.2,
            rotation: std::f32::consts::FRAC_PI_4,
        };
        let (l, t, rr, b) = r.bounds();
        let half_diag = 0.1 * std::f32::consts::SQRT_2;
        assert!((l - (0.5 - half_diag)).abs() < 1e-5 && (rr - (0.5 + half_diag)).abs() < 1e-5);
        assert!((t - (0.5 - half_diag)).abs() < 1e-5 && (b - (0.5 + half_diag)).abs() < 1e-5);
        assert_eq!(r.corners().len(), 4);
    }
}
