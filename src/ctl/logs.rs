//! `ctl logs POD [-c CONTAINER] [-f] [--tail N] [-p] [--since D | --since-time T]
//! [--timestamps]`: a container's log, streamed to the output as the API server relays it from
//! the pod's node agent.

use futures::StreamExt;
use orchestra::api::Client;
use orchestra_api::logs::PodLogOptions;

use super::CtlError;

/// Prints the log of `pod`'s container in `namespace`, flushing each chunk (so that `-f`
/// shows lines as they are written), until the stream ends.
pub async fn logs<C: Client>(
    client: &C,
    namespace: &str,
    pod: &str,
    options: &PodLogOptions,
    out: &mut dyn std::io::Write,
) -> Result<(), CtlError> {
    let context = || format!("reading the log of pod {namespace}/{pod}");
    let mut stream = client
        .pod_logs(namespace, pod, options)
        .await
        .map_err(|err| CtlError::api(context(), err))?;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|err| CtlError::api(context(), err))?;
        out.write_all(&chunk)?;
        out.flush()?;
    }
    Ok(())
}
