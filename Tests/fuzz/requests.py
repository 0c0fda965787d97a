#!/usr/bin/env python3
"""Mutation fuzzing of tallyd's methods through its socket (used by Tests/TallyLiveTests/FuzzTests.swift).

Starts from a valid params object per method, mutates one to three fields (removes them, puts in
edge values: extreme timestamps and amounts, wrong types, huge integers, long ids), sends each
request and checks the daemon answers every line with a result or a clear error: never -32603,
never a closed connection. Usage: requests.py SOCKET SEED COUNT. Exit 0 when every request got a
proper answer, 1 otherwise (each problem printed).
"""
import socket, json, random, sys, time, copy
sock_path=sys.argv[1]; seed=int(sys.argv[2]); N=int(sys.argv[3])
rnd=random.Random(seed)
def conn():
    s=socket.socket(socket.AF_UNIX); s.connect(sock_path); s.settimeout(60); return s, s.makefile('rwb',buffering=0)
s,f=conn()
T=["2026-11-01T00:00:00Z","0001-01-01T00:00:00Z","9999-12-31T23:59:59.999999Z","9999-12-31T23:59:59Z","2026-11-01T00:00:00.123456789Z","2026-11-01T00:00:00-23:59","1969-12-31T23:59:59Z","0000-01-01T00:00:00Z"]
A=["1","0.000000000001","99999999999999999999.999999999999","170141183460469231731.687303715884","-1","0","1e3",12,0.1,"-0.000000000001","100000000000000000000000","18446744073709551616"]
templates={
"reportUsage":{"customerId":"acme","featureId":"f1","value":"1","updateBehavior":"DELTA","resourceId":"r","idempotencyKey":"k","timestamp":T[0],"dimensions":{"a":"b"},"strict":False},
"reportEvent":{"events":[{"customerId":"acme","eventName":"acme","idempotencyKey":"e","dimensions":{"customerId":"u1","n":"1"},"timestamp":T[0],"resourceId":"r"}]},
"grantCredits":{"customerId":"acme","currencyId":"cur","amount":"5","grantType":"PAID","priority":50,"effectiveAt":T[0],"expireAt":"2026-12-01T00:00:00Z","resourceId":"r","cost":{"amount":"1","currency":"USD"},"metadata":{"a":"b"},"comment":"c","idempotencyKey":"g"},
"setAutoRecharge":{"customerId":"acme","currencyId":"cur","isEnabled":True,"thresholdValue":"10","targetBalance":"100","maxSpendLimit":"1000","grantExpirationPeriod":"YEAR"},
"getUsageHistory":{"customerId":"acme","featureId":"f1","startDate":T[0],"endDate":"2026-12-01T00:00:00Z","granularity":"MINUTE","groupBy":["a"],"resourceId":"r"},
"getCreditUsage":{"customerId":"acme","currencyId":"cur","timeRange":"LAST_YEAR","startDate":T[0],"endDate":"2026-12-01T00:00:00Z","groupBy":["featureId","a"],"resourceId":"r"},
"getCreditBalance":{"customerId":"acme","currencyId":"cur","resourceId":"r","asOf":T[0]},
"getCreditLedger":{"customerId":"acme","currencyId":"cur","resourceId":"r","eventType":"CREDITS_CONSUMED","after":0,"limit":10},
"getEntitlement":{"customerId":"acme","featureId":"f1","requestedUsage":"5","resourceId":"r"},
"grantPromotionalEntitlement":{"customerId":"acme","featureId":"f1","usageLimit":"5","resetPeriod":"WEEK","endDate":"2027-01-01T00:00:00Z"},
"definePlan":{"planId":"plan1","displayName":"P","entitlements":[{"featureId":"f1","usageLimit":100,"resetPeriod":"MONTH"}],"trialDays":3},
"defineFeature":{"featureId":"f1","type":"METERED","unit":"u","creditCost":{"currencyId":"cur","amountPerUnit":"0.5"}},
"importRecords":{"format":"OCTANE","records":[{"id":"o1","meter_name":"f1","customer_name":"acme","value":2,"time":T[0],"labels":{"a":"b"},"reset_total":True}]},
"debug.setClock":{"now":T[0]},
"readLedger":{"after":0,"limit":5},
"listCustomers":{"after":"a","limit":5},
"voidCreditGrant":{"grantId":"grant_8"},
"provisionSubscription":{"customerId":"acme","planId":"plan1","status":"TRIAL","startDate":T[0]},
}
def rv():
    c=rnd.randrange(10)
    if c<3: return rnd.choice(T)
    if c<6: return rnd.choice(A)
    if c==6: return rnd.choice([None,True,[],{},"", "x"*257])
    if c==7: return rnd.choice(["DAY","WEEK","MONTH","YEAR","MINUTE","SET","DELTA","PROMOTIONAL"])
    if c==8: return {"sequence": rnd.choice([1,0,10**19,-5])}
    return rnd.randint(-2**63, 2**64)
def mutate(o, depth=0):
    if isinstance(o, dict) and o:
        k=rnd.choice(list(o))
        r=rnd.random()
        if r<0.15: del o[k]
        elif r<0.6 or depth>2: o[k]=rv()
        else: mutate(o[k], depth+1)
    elif isinstance(o, list) and o:
        i=rnd.randrange(len(o))
        if rnd.random()<0.5: o[i]=rv()
        else: mutate(o[i], depth+1)
bad=0;t0=time.time()
for i in range(N):
    m=rnd.choice(list(templates)); p=copy.deepcopy(templates[m])
    for _ in range(rnd.randrange(1,4)): mutate(p)
    if "idempotencyKey" in p and rnd.random()<0.5: p["idempotencyKey"]="k%d"%i
    line=json.dumps({"jsonrpc":"2.0","id":i,"method":m,"params":p})
    try:
        f.write((line+"\n").encode()); r=f.readline()
        if not r: print("CLOSED", line[:400]); bad+=1; time.sleep(0.5); s,f=conn(); continue
        r=json.loads(r)
        if "error" in r and r["error"]["code"]==-32603: print("INTERNAL", line[:400], r["error"]); bad+=1
    except Exception as e:
        print("EXC", e, line[:400]); bad+=1
        try: time.sleep(0.5); s,f=conn()
        except Exception as e2: print("daemon down:", e2); sys.exit(1)
print("done", N, "bad", bad, "%.1fs"%(time.time()-t0))
sys.exit(1 if bad else 0)
