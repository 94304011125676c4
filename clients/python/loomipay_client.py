# The integration guide's Python client, copied unedited from
# ../shared/seed/loomi-pay-integration-guide.md, section "Python 示例" (the ```python block).
# Everything below this header is the guide's code byte for byte, including its Chinese text,
# which the guide's copy carries double-encoded (it cannot be decoded back without loss).
# Do not edit it: clients/run.sh checks that it still matches the guide, and
# run_guide_client.py wraps it instead.

import requests
import redis
import json
from typing import Dict, Any, Optional

class LoomipayClient:
    def __init__(self, base_url: str, api_key: str, app_id: str, redis_url: str):
        self.base_url = base_url.rstrip('/')
        self.api_key = api_key
        self.app_id = app_id
        self.redis_client = redis.from_url(redis_url)
        self.headers = {
            'Authorization': f'Bearer {api_key}',
            'Content-Type': 'application/json'
        }
    
    def create_payment_order(self, 
                           merchant_order_id: str,
                           amount: int,
                           subject: str,
                           order_type: str = "payment",
                           extra_data: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """åˆ›å»ºæ”¯ä»˜è®¢å•"""
        url = f"{self.base_url}/api/v1/payment-orders"
        data = {
            "app_id": self.app_id,
            "merchant_order_id": merchant_order_id,
            "amount": amount,
            "order_type": order_type,
            "subject": subject,
            "extra_data": extra_data or {}
        }
        
        response = requests.post(url, json=data, headers=self.headers)
        response.raise_for_status()
        return response.json()
    
    def get_payment_order(self, merchant_order_id: str) -> Dict[str, Any]:
        """æŸ¥è¯¢æ”¯ä»˜è®¢å•"""
        url = f"{self.base_url}/api/v1/payment-orders/{merchant_order_id}"
        params = {"app_id": self.app_id}
        
        response = requests.get(url, params=params, headers=self.headers)
        response.raise_for_status()
        return response.json()
    
    def create_refund_order(self,
                           payment_order_id: str,
                           amount: int,
                           reason: Optional[str] = None) -> Dict[str, Any]:
        """åˆ›å»ºé€€æ¬¾è®¢å•"""
        url = f"{self.base_url}/api/v1/refund-orders"
        data = {
            "app_id": self.app_id,
            "payment_order_id": payment_order_id,
            "amount": amount,
            "reason": reason
        }
        
        response = requests.post(url, json=data, headers=self.headers)
        response.raise_for_status()
        return response.json()
    
    def listen_payment_results(self, consumer_group: str = "main_app"):
        """ç›‘å¬æ”¯ä»˜ç»“æœæ¶ˆæ¯"""
        stream_name = "payment_results"
        
        # åˆ›å»ºæ¶ˆè´¹è€…ç»„ï¼ˆå¦‚æœä¸å˜åœ¨ï¼‰
        try:
            self.redis_client.xgroup_create(stream_name, consumer_group, id='0', mkstream=True)
        except redis.exceptions.ResponseError:
            pass  # ç»„å·²å˜åœ¨
        
        while True:
            try:
                messages = self.redis_client.xreadgroup(
                    consumer_group,
                    f"{self.app_id}_consumer",
                    {stream_name: '>'},
                    count=1,
                    block=1000
                )
                
                for stream, msgs in messages:
                    for msg_id, fields in msgs:
                        # è§£ææ¶ˆæ¯
                        message_data = {k.decode(): v.decode() for k, v in fields.items()}
                        
                        # åªå¤„ç†å±äºå½“å‰åº”ç”¨çš„æ¶ˆæ¯
                        if message_data.get('app_id') == self.app_id:
                            self.handle_payment_result(message_data)
                            
                        # ç¡®è®¤æ¶ˆæ¯å·²å¤„ç†
                        self.redis_client.xack(stream_name, consumer_group, msg_id)
                        
            except Exception as e:
                print(f"å¤„ç†æ¶ˆæ¯æ—¶å‘ç”Ÿé”™è¯¯: {e}")
    
    def handle_payment_result(self, message_data: Dict[str, str]):
        """å¤„ç†æ”¯ä»˜ç»“æœ"""
        event_type = message_data.get('event_type')
        
        if event_type == 'payment_status_changed':
            merchant_order_id = message_data.get('merchant_order_id')
            new_status = message_data.get('new_status')
            
            print(f"è®¢å• {merchant_order_id} çŠ¶æ€å˜æ›´ä¸º: {new_status}")
            
            # æ ¹æ®çŠ¶æ€æ‰§è¡Œç›¸åº”çš„ä¸šåŠ¡é€»è¾‘
            if new_status == 'succeeded':
                self.handle_payment_success(message_data)
            elif new_status == 'failed':
                self.handle_payment_failure(message_data)
    
    def handle_payment_success(self, message_data: Dict[str, str]):
        """å¤„ç†æ”¯ä»˜æˆåŠŸ"""
        merchant_order_id = message_data.get('merchant_order_id')
        amount = int(message_data.get('amount', 0))
        
        # åœ¨è¿™é‡Œå®ç°æ‚¨çš„ä¸šåŠ¡é€»è¾‘
        # ä¾‹å¦‚ï¼šå‘æ”¾ç§¯åˆ†ã€æ¿€æ´»VIPã€å‘é€é€šçŸ¥ç‰
        print(f"æ”¯ä»˜æˆåŠŸå¤„ç†: è®¢å•{merchant_order_id}, é‡‘é¢{amount}åˆ†")
    
    def handle_payment_failure(self, message_data: Dict[str, str]):
        """å¤„ç†æ”¯ä»˜å¤±è´¥"""
        merchant_order_id = message_data.get('merchant_order_id')
        
        # åœ¨è¿™é‡Œå®ç°æ‚¨çš„ä¸šåŠ¡é€»è¾‘
        # ä¾‹å¦‚ï¼šå›æ»šè®¢å•çŠ¶æ€ã€å‘é€å¤±è´¥é€šçŸ¥ç‰
        print(f"æ”¯ä»˜å¤±è´¥å¤„ç†: è®¢å•{merchant_order_id}")

# ä½¿ç”¨ç¤ºä¾‹
if __name__ == "__main__":
    client = LoomipayClient(
        base_url="https://pay.your-domain.com",
        api_key="your-super-secret-api-key-here",
        app_id="your_app_identifier",
        redis_url="redis://localhost:6379/0"
    )
    
    # åˆ›å»ºæ”¯ä»˜è®¢å•
    order = client.create_payment_order(
        merchant_order_id="ORDER_20241203_001",
        amount=10000,  # 100.00å…ƒ
        subject="è´ä¹°VIPä¼šå‘˜",
        extra_data={"user_id": "user_12345"}
    )
    print(f"åˆ›å»ºè®¢å•æˆåŠŸ: {order['id']}")
    
    # æŸ¥è¯¢è®¢å•çŠ¶æ€
    order_info = client.get_payment_order("ORDER_20241203_001")
    print(f"è®¢å•çŠ¶æ€: {order_info['status']}")
    
    # å¯åŠ¨æ¶ˆæ¯ç›‘å¬ï¼ˆåœ¨å•ç‹¬çš„çº¿ç¨‹æˆ–è¿›ç¨‹ä¸è¿è¡Œï¼‰
    # client.listen_payment_results()
