import json, sys
for f in sys.argv[1:]:
    if f.endswith('.json'):
        print(json.dumps(json.load(open(f)), indent=1)[:5000])
