//! (being written)

use crate::ControllerConfig;

pub async fn run(client: kube::Client, config: ControllerConfig) -> anyhow::Result<()> {
    let _ = (client, config);
    futures::future::pending::<()>().await;
    Ok(())
}
