//! ImageLocality (Score): prefer nodes that already have the pod's images, weighing each
//! image by its size and by how widely it is spread (an image on every node says little
//! about one node). The sum is clamped between 23 MB and 1000 MB per container and scaled to
//! `0..=100`, as kube-scheduler does.

use std::sync::Arc;

use crate::framework::{
    CycleState, Extensions, MAX_NODE_SCORE, Plugin, PreScorePlugin, ScorePlugin, Status,
};
use crate::snapshot::{ClusterSnapshot, NodeInfo, PodInfo};

const MB: i64 = 1024 * 1024;
/// Below this sum a node scores 0.
pub const MIN_THRESHOLD: i64 = 23 * MB;
/// At this sum per container a node scores 100.
pub const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct ImageLocality;

impl ImageLocality {
    /// The plugin's name.
    pub const NAME: &'static str = "ImageLocality";
}

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn extensions(self: Arc<Self>) -> Extensions {
        Extensions::new().pre_score(self.clone()).score(self)
    }
}

/// Each of the pod's images with the fraction of nodes having it.
#[derive(Clone)]
struct Spread(Vec<(Arc<str>, f64)>);

impl PreScorePlugin for ImageLocality {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        cluster: &ClusterSnapshot,
        _: &[&NodeInfo],
    ) -> Status {
        if cluster.num_images() == 0 || pod.images.is_empty() {
            return Status::skip();
        }
        let total = cluster.len().max(1) as f64;
        let spread = pod
            .images
            .iter()
            .map(|image| {
                (
                    image.clone(),
                    f64::from(cluster.image_spread(image)) / total,
                )
            })
            .collect();
        state.write(Spread(spread));
        Status::success()
    }
}

impl ScorePlugin for ImageLocality {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let Some(Spread(images)) = state.read::<Spread>() else {
            return Ok(0);
        };
        let sum: i64 = images
            .iter()
            .filter_map(|(image, spread)| {
                node.image_size(image)
                    .map(|size| (size as f64 * spread) as i64)
            })
            .sum();
        let max = MAX_CONTAINER_THRESHOLD * pod.images.len() as i64;
        let clamped = sum.clamp(MIN_THRESHOLD, max);
        Ok(MAX_NODE_SCORE * (clamped - MIN_THRESHOLD) / (max - MIN_THRESHOLD))
    }
}
