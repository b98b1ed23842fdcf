#!/usr/bin/env python3
"""Extracts the input shapes of the operations rdslocal implements from
botocore's service models into api/model/<service>.json (committed).

Run: python3 tools/genmodel.py   (needs botocore; the AWS CLI ships it)
"""
import json, os, botocore.loaders

OPS = {
    "rds": ("2014-10-31", """CreateDBProxy DescribeDBProxies ModifyDBProxy DeleteDBProxy
        CreateDBProxyEndpoint DescribeDBProxyEndpoints ModifyDBProxyEndpoint DeleteDBProxyEndpoint
        DescribeDBProxyTargetGroups ModifyDBProxyTargetGroup RegisterDBProxyTargets
        DescribeDBProxyTargets DeregisterDBProxyTargets CreateDBInstance DescribeDBInstances
        ModifyDBInstance DeleteDBInstance RebootDBInstance CreateDBCluster DescribeDBClusters
        ModifyDBCluster DeleteDBCluster FailoverDBCluster AddTagsToResource ListTagsForResource
        RemoveTagsFromResource DescribeEvents"""),
    "secretsmanager": ("2017-10-17", """CreateSecret GetSecretValue BatchGetSecretValue PutSecretValue
        UpdateSecret UpdateSecretVersionStage DescribeSecret ListSecrets ListSecretVersionIds
        DeleteSecret RestoreSecret TagResource UntagResource GetRandomPassword"""),
    "acm": ("2015-12-08", """RequestCertificate DescribeCertificate GetCertificate ListCertificates
        DeleteCertificate ImportCertificate ExportCertificate AddTagsToCertificate
        ListTagsForCertificate RemoveTagsFromCertificate"""),
    "iam": ("2010-05-08", """CreateUser GetUser ListUsers DeleteUser CreateAccessKey ListAccessKeys
        DeleteAccessKey CreateRole GetRole ListRoles DeleteRole PutUserPolicy GetUserPolicy
        DeleteUserPolicy PutRolePolicy GetRolePolicy DeleteRolePolicy CreatePolicy GetPolicy
        DeletePolicy AttachUserPolicy DetachUserPolicy AttachRolePolicy DetachRolePolicy
        ListAttachedUserPolicies ListAttachedRolePolicies ListPolicies GetPolicyVersion
        ListUserPolicies ListRolePolicies"""),
    "sts": ("2011-06-15", "GetCallerIdentity AssumeRole GetSessionToken"),
}

KEEP = ("type", "required", "min", "max", "enum", "flattened", "sensitive")

def main():
    loader = botocore.loaders.Loader()
    out_dir = os.path.join(os.path.dirname(__file__), "..", "api", "model")
    for svc, (version, ops) in OPS.items():
        raw = loader.load_service_model(svc, "service-2", version)
        shapes, ops_out = {}, {}

        def visit(name):
            if name in shapes:
                return
            s = raw["shapes"][name]
            o = {k: s[k] for k in KEEP if k in s}
            shapes[name] = o
            if s["type"] == "structure":
                o["members"] = {}
                for m, ref in s.get("members", {}).items():
                    r = {"shape": ref["shape"]}
                    if "locationName" in ref:
                        r["locationName"] = ref["locationName"]
                    if ref.get("idempotencyToken"):
                        r["idempotencyToken"] = True
                    o["members"][m] = r
                    visit(ref["shape"])
            elif s["type"] == "list":
                o["member"] = {"shape": s["member"]["shape"]}
                if "locationName" in s["member"]:
                    o["member"]["locationName"] = s["member"]["locationName"]
                visit(s["member"]["shape"])
            elif s["type"] == "map":
                o["key"] = {"shape": s["key"]["shape"]}
                o["value"] = {"shape": s["value"]["shape"]}
                visit(s["key"]["shape"]); visit(s["value"]["shape"])

        for op in ops.split():
            d = raw["operations"][op]
            entry = {}
            if "input" in d:
                entry["input"] = d["input"]["shape"]
                visit(d["input"]["shape"])
            ops_out[op] = entry
        meta = raw["metadata"]
        doc = {
            "metadata": {k: meta[k] for k in ("protocol", "apiVersion", "signingName", "targetPrefix", "jsonVersion", "xmlNamespace", "endpointPrefix") if k in meta},
            "operations": ops_out,
            "shapes": dict(sorted(shapes.items())),
        }
        with open(os.path.join(out_dir, svc + ".json"), "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.write("\n")

if __name__ == "__main__":
    main()
