//! Tar layers in and out (OCI image-spec "layer" format).
