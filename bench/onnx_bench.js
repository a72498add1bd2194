// ONNX Runtime's side of bench/onnx_bench.sh: times session.run of each
// exported encoder and of two graphs that measure the Node.js call
// overhead, at batch 1 and 256 (CPU, one intra-op thread), median of
// per-call times after a warm-up, and prints
// "ort NAME BATCH MEDIAN_US IDENTITY_US SLICE_US" lines:
// - identity: the Identity graph of the same input (libae exports it), whose
//   output is the input's size (0.8 MB at batch 256 for dense_a);
// - slice: the same input, flattened and sliced to the encoder's output
//   size (Reshape + Slice, built here): the same bytes in and out as the
//   encoder, so its time is the call's overhead for that encoder.
// Usage: node onnx_bench.js DIR   (NODE_PATH must reach onnxruntime-node)
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

const dir = process.argv[2];
const raw = fs.readFileSync(path.join(dir, 'input.bin'));
const x = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));

// ---- a minimal protobuf writer for the slice graph (onnx.proto field numbers) ----
function varint(n) {
  const out = [];
  let v = BigInt(n);
  if (v < 0n) v += 1n << 64n;
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return out;
}
const fInt = (f, n) => [...varint(f << 3), ...varint(n)];
const fBytes = (f, bytes) => [...varint((f << 3) | 2), ...varint(bytes.length), ...bytes];
const fStr = (f, s) => fBytes(f, [...Buffer.from(s, 'utf8')]);

function int64Tensor(name, values) { // TensorProto: dims 1, data_type 2 (7 INT64), name 8, raw_data 9
  const rawData = Buffer.alloc(8 * values.length);
  values.forEach((v, i) => rawData.writeBigInt64LE(BigInt(v), 8 * i));
  return [...fInt(1, values.length), ...fInt(2, 7), ...fStr(8, name), ...fBytes(9, [...rawData])];
}
function valueInfo(name, dims) { // ValueInfoProto{name 1, type 2{tensor_type 1{elem_type 1, shape 2{dim 1}}}}
  const shape = dims.map((d) => fBytes(1, typeof d === 'string' ? fStr(2, d) : fInt(1, d))).flat();
  return [...fStr(1, name), ...fBytes(2, fBytes(1, [...fInt(1, 1), ...fBytes(2, shape)]))];
}
function node(op, inputs, outputs) { // NodeProto: input 1, output 2, op_type 4
  return [...inputs.map((s) => fStr(1, s)).flat(), ...outputs.map((s) => fStr(2, s)).flat(), ...fStr(4, op)];
}

// input [batch, ...inDims] -> Reshape [batch, -1] -> Slice [:, 0:width]
function sliceModel(inDims, width) {
  const graph = [
    ...fBytes(1, node('Reshape', ['input', 'flat_shape'], ['flat'])),
    ...fBytes(1, node('Slice', ['flat', 'starts', 'ends', 'axes'], ['code'])),
    ...fStr(2, 'slice'),
    ...fBytes(5, int64Tensor('flat_shape', [0, -1])),
    ...fBytes(5, int64Tensor('starts', [0])),
    ...fBytes(5, int64Tensor('ends', [width])),
    ...fBytes(5, int64Tensor('axes', [1])),
    ...fBytes(11, valueInfo('input', ['batch', ...inDims])),
    ...fBytes(12, valueInfo('code', ['batch', width])),
  ];
  // ModelProto: ir_version 1, graph 7, opset_import 8 {version 2}
  return Uint8Array.from([...fInt(1, 7), ...fBytes(7, graph), ...fBytes(8, fInt(2, 13))]);
}

const options = {
  executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
};

async function median(model, batch) {
  const s = await ort.InferenceSession.create(model, options);
  const inDims = s.inputMetadata[0].shape.slice(1);
  const per = inDims.reduce((p, d) => p * d, 1);
  const feeds = { input: new ort.Tensor('float32', x.subarray(0, batch * per), [batch, ...inDims]) };
  let out;
  for (let i = 0; i < 20; i++) out = await s.run(feeds);
  const t = [];
  const start = process.hrtime.bigint();
  while (t.length < 50 || Number(process.hrtime.bigint() - start) < 5e8) {
    const a = process.hrtime.bigint();
    await s.run(feeds);
    t.push(Number(process.hrtime.bigint() - a) / 1e3);
  }
  t.sort((p, q) => p - q);
  const o = out[s.outputNames[0]];
  return { us: t[t.length >> 1], inDims, width: o.size / batch };
}

async function main() {
  for (const name of ['dense_a', 'conv_seed']) {
    for (const batch of [1, 256]) {
      const m = await median(path.join(dir, `${name}.onnx`), batch);
      const id = await median(path.join(dir, `${name}_identity.onnx`), batch);
      const sl = await median(sliceModel(m.inDims, m.width), batch);
      if (sl.width !== m.width) throw new Error(`${name}: slice width ${sl.width} != ${m.width}`);
      console.log(`ort ${name} ${batch} ${m.us.toFixed(3)} ${id.us.toFixed(3)} ${sl.us.toFixed(3)}`);
    }
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
