//! Defaults of Nodes.

use crate::resources::Node;

/// Fills a Node's defaults: `status.allocatable` = `status.capacity` when absent.
pub fn default_node(node: &mut Node) {
    if let Some(status) = &mut node.status
        && status.allocatable.is_empty()
    {
        status.allocatable = status.capacity.clone();
    }
}
