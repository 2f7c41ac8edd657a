//! DefaultBinder (Bind): writes the binding through the API's binding subresource
//! ([`ApiHandle::bind`], i.e. `Client::bind`). A custom Bind plugin replaces it in a profile
//! (`bind: {disabled: [{name: DefaultBinder}], enabled: [{name: MyBinder}]}`), or runs before
//! it and returns [`Status::skip`] for the pods it leaves to it.

use std::sync::Arc;

use async_trait::async_trait;

use crate::framework::{ApiHandle, BindPlugin, CycleState, Extensions, Plugin, Status};
use crate::snapshot::PodInfo;

/// See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultBinder;

impl DefaultBinder {
    /// The plugin's name.
    pub const NAME: &'static str = "DefaultBinder";
}

impl Plugin for DefaultBinder {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn extensions(self: Arc<Self>) -> Extensions {
        Extensions::new().bind(self)
    }
}

#[async_trait]
impl BindPlugin for DefaultBinder {
    async fn bind(&self, api: &dyn ApiHandle, _: &CycleState, pod: &PodInfo, node: &str) -> Status {
        match api.bind(pod.namespace(), pod.name(), node).await {
            Ok(_) => Status::success(),
            Err(e) => Status::error(format!("binding {} to {node}: {e}", pod.key())),
        }
    }
}
