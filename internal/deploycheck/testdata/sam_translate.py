#!/usr/bin/env python3
"""Expand a SAM template as CloudFormation's AWS::Serverless-2016-10-31 transform does on deploy.

Usage: sam_translate.py TEMPLATE PARAMETERS_JSON  (the region from AWS_DEFAULT_REGION)

Prints the CloudFormation template CloudFormation would then create, as JSON. Each function's
local CodeUri becomes an s3:// URI first, as `sam deploy` uploads the built code and rewrites it;
managed policies named in Policies are not looked up (the template names none).
"""
import json
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    def load(self):
        return {}


def main():
    with open(sys.argv[1]) as f:
        template = yaml_parse(f.read())
    for name, resource in template.get("Resources", {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://loomipay-artifacts/" + name + ".zip"
    json.dump(transform(template, json.loads(sys.argv[2]), NoManagedPolicies()), sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
