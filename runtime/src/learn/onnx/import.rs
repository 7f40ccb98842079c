//! ONNX import (below).
