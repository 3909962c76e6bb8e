// onnx_ort_run.js - runs an ONNX model in ONNX Runtime (the npm package
// onnxruntime-node, CPU) for test_export_onnx.py:
//   node onnx_ort_run.js MODEL.onnx INPUT_NAME float32|int64 DIMS IN.bin OUT.bin
// DIMS is comma-separated ("8,784"); IN.bin holds the input's raw
// little-endian values, OUT.bin receives the first output's float32 values.
// Prints the output's dims as JSON. One intra-op thread and the basic graph
// optimisations only, so the numbers are ONNX Runtime's kernels on the
// graph as written, not a fused rewrite of it.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const [model, inputName, type, dimsText, inPath, outPath] = process.argv.slice(2);
  const dims = dimsText.split(',').map(Number);
  const buf = fs.readFileSync(inPath);
  const bytes = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  const data = type === 'int64' ? new BigInt64Array(bytes) : new Float32Array(bytes);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'basic',
  });
  const feeds = {[inputName]: new ort.Tensor(type, data, dims)};
  const out = await session.run(feeds);
  const y = out[session.outputNames[0]];
  fs.writeFileSync(outPath, Buffer.from(y.data.buffer, y.data.byteOffset, y.data.byteLength));
  console.log(JSON.stringify({output: session.outputNames[0], dims: y.dims}));
}

main().catch((e) => { console.error(`onnx_ort_run: ${e.message || e}`); process.exit(1); });
