//! [`MeshBody`]: a request body the outbound stack can send again when it is buffered.
//!
//! Retrying a request means sending its body twice, so the proxy reads small bodies whole
//! before forwarding ([`MeshBody::Full`], cheap to clone) and streams the others
//! ([`MeshBody::Streaming`], never retried).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// The error of a [`MeshBody`]: the client's connection failed while its body streamed.
pub type BodyError = hyper::Error;

/// A request body on its way through the mesh.
#[derive(Debug)]
pub enum MeshBody {
    /// A body held in memory (possibly empty): replayable.
    Full(Option<Bytes>),
    /// A body read from the client as it is forwarded: sent once.
    Streaming(Incoming),
}

impl MeshBody {
    /// An empty body.
    pub fn empty() -> Self {
        MeshBody::Full(None)
    }

    /// A copy of the body, if it can be sent again (it is held in memory).
    pub fn try_clone(&self) -> Option<MeshBody> {
        match self {
            MeshBody::Full(bytes) => Some(MeshBody::Full(bytes.clone())),
            MeshBody::Streaming(_) => None,
        }
    }
}

impl From<Bytes> for MeshBody {
    fn from(bytes: Bytes) -> Self {
        MeshBody::Full((!bytes.is_empty()).then_some(bytes))
    }
}

impl Body for MeshBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            MeshBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            MeshBody::Streaming(incoming) => Pin::new(incoming).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            MeshBody::Full(bytes) => bytes.is_none(),
            MeshBody::Streaming(incoming) => incoming.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MeshBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            MeshBody::Streaming(incoming) => incoming.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn full_bodies_clone_and_replay() {
        let body = MeshBody::from(Bytes::from_static(b"hello"));
        let copy = body.try_clone().unwrap();
        assert_eq!(body.size_hint().exact(), Some(5));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
        assert_eq!(copy.collect().await.unwrap().to_bytes(), "hello");
        assert!(MeshBody::empty().is_end_stream());
        assert!(MeshBody::from(Bytes::new()).is_end_stream());
    }
}
