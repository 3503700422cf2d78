//! The gRPC contract of Doorward (package `doorward.v1`), generated from
//! `proto/doorward/v1/doorward.proto`. No logic lives here.

/// Generated messages, clients and servers of `doorward.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("doorward.v1");

    /// The encoded file descriptor set, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("doorward_descriptor");
}
