// @aws-sdk/xml-builder, with its portable XML parser. The package's "browser" field swaps in a parser built
// on DOMParser, which Workers do not have ("DOMParser is not defined"); wrangler.toml and vitest.config.ts
// alias the package to this module, which imports the files directly so that swap never applies.

export { XmlNode } from "../../node_modules/@aws-sdk/xml-builder/dist-es/XmlNode.js";
export { XmlText } from "../../node_modules/@aws-sdk/xml-builder/dist-es/XmlText.js";
export { parseXML } from "../../node_modules/@aws-sdk/xml-builder/dist-es/xml-parser.js";
