//! Hello world: reads nothing, answers `200 hello`. What any spin-sdk component costs to
//! instantiate and call through the push-devices host.

use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};

#[spin_sdk::http_component]
async fn handle(_req: IncomingRequest, out: ResponseOutparam) {
    let response = OutgoingResponse::new(Fields::new());
    let _ = response.set_status_code(200);
    let _ = out.set_with_body(response, b"hello".to_vec()).await;
}
