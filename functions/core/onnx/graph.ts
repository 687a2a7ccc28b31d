/**
 * Collects the nodes and initializers of one ONNX graph while the converter walks a model,
 * handing out unique value names (ONNX requires every value name to be assigned once: SSA).
 */
import { floatTensor, int64Tensor, type AttributeValue, type NodeProto, type TensorProto } from './proto';

export type Attributes = Record<string, AttributeValue>;

/** Attribute shorthands, so node definitions read like the operator docs. */
export const attr = {
  int: (value: number): AttributeValue => ({ type: 'int', value }),
  ints: (value: readonly number[]): AttributeValue => ({ type: 'ints', value }),
  float: (value: number): AttributeValue => ({ type: 'float', value }),
};

export class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  private readonly names = new Set<string>();

  /** Reserves a name that the graph's inputs use. */
  reserve(name: string): string {
    if (this.names.has(name)) throw new Error(`ONNX value name ${name} is already used.`);
    this.names.add(name);
    return name;
  }

  /** A fresh value name starting with `base` (TF.js layer names are unique but a layer makes several values). */
  unique(base: string): string {
    const clean = base.replace(/[^A-Za-z0-9_./-]/g, '_');
    let name = clean;
    for (let i = 1; this.names.has(name); i++) name = `${clean}_${i}`;
    this.names.add(name);
    return name;
  }

  /** Adds a node with one output and returns the output's name. */
  node(opType: string, inputs: readonly string[], attributes: Attributes, base: string): string {
    const output = this.unique(`${base}/${opType}`);
    this.nodes.push({ name: output, opType, inputs, outputs: [output], attributes });
    return output;
  }

  constFloat(base: string, dims: readonly number[], values: Float32Array | readonly number[]): string {
    const name = this.unique(base);
    this.initializers.push(floatTensor(name, dims, values));
    return name;
  }

  constInt64(base: string, dims: readonly number[], values: readonly number[]): string {
    const name = this.unique(base);
    this.initializers.push(int64Tensor(name, dims, values));
    return name;
  }

  /**
   * Gives the value `from` the name `to` (the graph's output must be called "output"): the node
   * producing it is renamed in place, or, when the value is a graph input, an Identity is added.
   */
  rename(from: string, to: string): void {
    this.reserve(to);
    const producer = this.nodes.find((n) => n.outputs.includes(from));
    if (producer === undefined) {
      this.nodes.push({ name: to, opType: 'Identity', inputs: [from], outputs: [to], attributes: {} });
      return;
    }
    const index = this.nodes.indexOf(producer);
    this.nodes[index] = { ...producer, outputs: producer.outputs.map((o) => (o === from ? to : o)) };
    for (let i = index + 1; i < this.nodes.length; i++) {
      const n = this.nodes[i]!;
      if (n.inputs.includes(from)) this.nodes[i] = { ...n, inputs: n.inputs.map((v) => (v === from ? to : v)) };
    }
  }
}
