//! Prints the OpenAPI document of Agora's contracts, as `/openapi.json` serves it, without
//! starting anything: `cargo run -p agora-gateway --example openapi > openapi.json`.

use prost_reflect::DescriptorPool;

fn main() -> anyhow::Result<()> {
    let pool = DescriptorPool::decode(agora_contracts::FILE_DESCRIPTOR_SET)?;
    let bindings = agora_gateway::rules::bindings(&pool)?;
    let document = agora_gateway::openapi::document(&pool, &bindings);
    println!("{}", serde_json::to_string_pretty(&document)?);
    Ok(())
}
