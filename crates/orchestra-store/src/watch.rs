//! [`WatchStream`]: the stream of changes a [`Store::watch`](crate::Store::watch) returns.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;

use crate::error::StoreError;
use crate::types::WatchResponse;

/// Lets a consumer ask the producer of a watch for a progress notification.
pub trait WatchControl: Send + Sync {
    /// Ask for a progress notification: a [`WatchResponse`] without events whose revision
    /// bounds everything delivered so far. It arrives after any events already in flight.
    fn request_progress(&self);
}

/// A stream of [`WatchResponse`]s. It ends after an error (`Compacted`, `Lagged`, `Closed`),
/// or when the store is dropped; dropping it cancels the watch.
pub struct WatchStream {
    inner: Pin<Box<dyn Stream<Item = Result<WatchResponse, StoreError>> + Send>>,
    control: Box<dyn WatchControl>,
}

impl WatchStream {
    /// Wrap a stream and its control handle; for implementors of [`Store`](crate::Store).
    pub fn new(
        inner: impl Stream<Item = Result<WatchResponse, StoreError>> + Send + 'static,
        control: impl WatchControl + 'static,
    ) -> Self {
        WatchStream {
            inner: Box::pin(inner),
            control: Box::new(control),
        }
    }

    /// Ask for a progress notification (see [`WatchControl::request_progress`]).
    pub fn request_progress(&self) {
        self.control.request_progress();
    }

    /// The same watch with every response passed through `f` (progress requests still reach
    /// the producer): for layers over a store that transform values, such as encryption at rest.
    pub fn map_responses(
        self,
        f: impl FnMut(WatchResponse) -> WatchResponse + Send + 'static,
    ) -> Self {
        use futures::StreamExt;
        let mut f = f;
        WatchStream {
            inner: Box::pin(self.inner.map(move |item| item.map(&mut f))),
            control: self.control,
        }
    }
}

impl Stream for WatchStream {
    type Item = Result<WatchResponse, StoreError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream").finish_non_exhaustive()
    }
}
